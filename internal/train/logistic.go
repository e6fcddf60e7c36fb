package train

import (
	"context"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
)

// Objective is the L2-penalised logistic loss of a design matrix: for parameters
// theta = (intercept, w_1..w_d),
//
//	f(theta) = sum_i [log(1 + exp(m_i)) - y_i m_i] + (1/(2C)) ||w||^2,   m_i = intercept + w·x_i,
//
// that is, the sum of the log losses plus the penalty of scikit-learn's LogisticRegression with
// inverse regularisation strength C; the intercept is not penalised.
type Objective struct {
	X    []float64 // n×d, row-major
	Y    []float64 // n labels, 0 or 1
	N, D int
	C    float64
}

// Value returns f(theta) and, when grad is not nil, stores the gradient in it (len D+1):
// df/dintercept = sum_i (sigma(m_i) - y_i), df/dw_j = sum_i (sigma(m_i) - y_i) x_ij + w_j / C.
func (o *Objective) Value(theta, grad []float64) float64 {
	w := theta[1:]
	if grad != nil {
		clear(grad)
	}
	var f float64
	for i := range o.N {
		xi := o.X[i*o.D : (i+1)*o.D]
		m := margin(theta[0], w, xi)
		f += softplus(m) - o.Y[i]*m
		if grad != nil {
			r := Sigmoid(m) - o.Y[i]
			grad[0] += r
			g := grad[1:]
			for j, x := range xi {
				g[j] += r * x
			}
		}
	}
	var ww float64
	for j, v := range w {
		ww += v * v
		if grad != nil {
			grad[1+j] += v / o.C
		}
	}
	return f + ww/(2*o.C)
}

// margin is intercept + sum w[i]*x[i], summed in column order: the exact loop of the serving code.
func margin(intercept float64, w, x []float64) float64 {
	m := intercept
	for i := range w {
		m += w[i] * x[i]
	}
	return m
}

// Sigmoid is the logistic function in the serving code's form: 1/(1+exp(-m)) for m >= 0 and
// exp(m)/(1+exp(m)) for m < 0.
func Sigmoid(m float64) float64 {
	if m >= 0 {
		return 1 / (1 + math.Exp(-m))
	}
	e := math.Exp(m)
	return e / (1 + e)
}

// softplus is log(1 + exp(m)) without overflow.
func softplus(m float64) float64 {
	if m > 0 {
		return m + math.Log1p(math.Exp(-m))
	}
	return math.Log1p(math.Exp(m))
}

// Solver settings. The objective is divided by n for the solver (the same minimiser, better
// scaled), which stops when the largest gradient component of that mean objective is below
// GradTolerance.
const (
	GradTolerance = 1e-9
	MaxIterations = 10000
)

// LogisticFit is a fitted logistic regression over a Prep's columns.
type LogisticFit struct {
	Intercept  float64
	Weights    []float64
	Iterations int
	// Objective is the final value of Objective.Value.
	Objective float64
}

// FitLogistic minimises Objective with inverse regularisation c over the rows of m (encoded
// with EncodeStandardized: no missing values) with gonum's L-BFGS (More-Thuente line search,
// analytic gradient), from all-zero parameters. It is deterministic. ctx cancels it. It is the
// fit of LogisticTrainer.
func FitLogistic(ctx context.Context, m Matrix, c float64) (*LogisticFit, error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("C must be a positive number, got %g", c)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	for i, x := range m.X {
		if !isFinite(x) {
			return nil, fmt.Errorf("logistic regression: row %d column %d is %v", i/m.D, i%m.D, x)
		}
	}
	obj := &Objective{X: m.X, Y: make([]float64, m.N), N: m.N, D: m.D, C: c}
	for i, y := range m.Y {
		if y {
			obj.Y[i] = 1
		}
	}
	return minimize(ctx, obj)
}

// minimize runs L-BFGS on obj/n.
func minimize(ctx context.Context, obj *Objective) (*LogisticFit, error) {
	scale := 1 / float64(obj.N)
	cache := &evalCache{obj: obj}
	problem := optimize.Problem{
		Func: func(theta []float64) float64 { return cache.eval(theta).f * scale },
		Grad: func(grad, theta []float64) {
			for j, g := range cache.eval(theta).grad {
				grad[j] = g * scale
			}
		},
		Status: func() (optimize.Status, error) {
			if err := ctx.Err(); err != nil {
				return optimize.Failure, err
			}
			return optimize.NotTerminated, nil
		},
	}
	settings := &optimize.Settings{
		GradientThreshold: GradTolerance,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-15, Relative: 1e-15, Iterations: 20},
		MajorIterations:   MaxIterations,
	}
	method := &optimize.LBFGS{Linesearcher: &optimize.MoreThuente{}}
	res, err := optimize.Minimize(problem, make([]float64, obj.D+1), settings, method)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if res == nil || err != nil && !converged(res, obj) {
		return nil, fmt.Errorf("logistic regression: the solver stopped without converging: %v", err)
	}
	return &LogisticFit{
		Intercept:  res.X[0],
		Weights:    slices.Clone(res.X[1:]),
		Iterations: res.Stats.MajorIterations,
		Objective:  obj.Value(res.X, nil),
	}, nil
}

// converged accepts a solver error (a line search that can make no more progress) when the
// gradient of the mean objective at the result is already small: the optimum was reached within
// floating-point precision.
func converged(res *optimize.Result, obj *Objective) bool {
	grad := make([]float64, obj.D+1)
	obj.Value(res.X, grad)
	for _, g := range grad {
		if math.Abs(g)/float64(obj.N) > 1e-6 {
			return false
		}
	}
	return true
}

// evalCache computes the objective and its gradient together and keeps the last point, since
// the solver asks for both at the same point one after the other.
type evalCache struct {
	obj   *Objective
	theta []float64
	f     float64
	grad  []float64
}

func (c *evalCache) eval(theta []float64) *evalCache {
	if c.theta != nil && slices.Equal(c.theta, theta) {
		return c
	}
	c.theta = append(c.theta[:0], theta...)
	if c.grad == nil {
		c.grad = make([]float64, len(theta))
	}
	c.f = c.obj.Value(theta, c.grad)
	return c
}
