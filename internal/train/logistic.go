package train

import (
	"context"
	"errors"
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

// Solver limits. The objective is divided by n for the solver (the same minimiser, better
// scaled), which stops when the largest gradient component of that mean objective is below
// GradTolerance, or when the objective has not decreased for 20 iterations. Every fit is
// bounded besides: at most MaxIterations iterations, MaxEvaluations evaluations of the
// objective (an iteration normally takes one or two) and MaxLineSearchEvaluations evaluations
// in one line search. The last bound is the "no progress" stop: gonum's More-Thuente line search
// can ask for the same point again and again once the objective is flat in its last bits (at
// the optimum of mlc_churn with 1% of its cells blanked it did until the run was killed, issue
// 13; TestFitLogisticEndsWhereTheLineSearchStalls), and the solver's own convergence tests only
// run between line searches. A fit stopped by a bound is accepted when the largest component of the
// mean gradient at the solver's best point is at most ConvergedGradient (the optimum reached to
// floating-point precision); otherwise it is an error that says which bound stopped it.
const (
	GradTolerance            = 1e-9
	ConvergedGradient        = 1e-6
	MaxIterations            = 1000
	MaxEvaluations           = 5000
	MaxLineSearchEvaluations = 50
)

// LogisticFit is a fitted logistic regression over a Prep's columns.
type LogisticFit struct {
	Intercept  float64
	Weights    []float64
	Iterations int
	// Evaluations counts the evaluations of the objective.
	Evaluations int
	// Objective is the final value of Objective.Value.
	Objective float64
}

// FitLogistic minimises Objective with inverse regularisation c over the rows of m (encoded
// with EncodeStandardized: no missing values) with gonum's L-BFGS (More-Thuente line search,
// analytic gradient), from all-zero parameters, within the limits above. It is deterministic.
// progress, when not nil, is called with the number of iterations after each one. ctx cancels
// it. It is the fit of LogisticTrainer.
func FitLogistic(ctx context.Context, m Matrix, c float64, progress func(iteration int)) (*LogisticFit, error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("the inverse regularisation strength c must be a positive number, got %g", c)
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
	return minimize(ctx, obj, defaultLimits, progress)
}

// solverLimits bound one fit: iterations, evaluations of the objective, and evaluations in one
// line search.
type solverLimits struct {
	iterations, evaluations, lineSearch int
}

var defaultLimits = solverLimits{MaxIterations, MaxEvaluations, MaxLineSearchEvaluations}

// errLineSearchStalled stops a line search that has used up its evaluations.
var errLineSearchStalled = errors.New("a line search made no progress")

// minimize runs L-BFGS on obj/n within limits.
func minimize(ctx context.Context, obj *Objective, limits solverLimits, progress func(int)) (*LogisticFit, error) {
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
		MajorIterations:   limits.iterations,
		FuncEvaluations:   limits.evaluations,
		Recorder:          &lineSearchGuard{progress: progress, limit: limits.lineSearch},
	}
	method := &optimize.LBFGS{Linesearcher: &optimize.MoreThuente{}}
	res, err := optimize.Minimize(problem, make([]float64, obj.D+1), settings, method)
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("logistic regression: %w", cerr)
	}
	if res == nil {
		return nil, fmt.Errorf("logistic regression: %v", err)
	}
	if err != nil || res.Status == optimize.IterationLimit || res.Status == optimize.FunctionEvaluationLimit {
		if grad := meanGradient(obj, res.X); !(grad <= ConvergedGradient) {
			return nil, fmt.Errorf("logistic regression did not converge: the L-BFGS solver stopped after %d iterations and %d evaluations (%s) "+
				"with the largest gradient component at %.3g, above %g", res.Stats.MajorIterations, res.Stats.FuncEvaluations,
				limits.stopReason(res.Status, err), grad, ConvergedGradient)
		}
	}
	for _, x := range res.X {
		if !isFinite(x) {
			return nil, errors.New("logistic regression: the solver returned a non-finite parameter")
		}
	}
	return &LogisticFit{
		Intercept:   res.X[0],
		Weights:     slices.Clone(res.X[1:]),
		Iterations:  res.Stats.MajorIterations,
		Evaluations: res.Stats.FuncEvaluations,
		Objective:   obj.Value(res.X, nil),
	}, nil
}

// stopReason says why the solver stopped, for an error.
func (l solverLimits) stopReason(status optimize.Status, err error) string {
	switch {
	case errors.Is(err, errLineSearchStalled):
		return fmt.Sprintf("%v in %d evaluations", err, l.lineSearch)
	case err != nil:
		return err.Error()
	case status == optimize.IterationLimit:
		return fmt.Sprintf("the limit of %d iterations", l.iterations)
	case status == optimize.FunctionEvaluationLimit:
		return fmt.Sprintf("the limit of %d evaluations", l.evaluations)
	}
	return status.String()
}

// meanGradient is the largest absolute component of the gradient of obj/n at theta (NaN when a
// component is NaN).
func meanGradient(obj *Objective, theta []float64) float64 {
	grad := make([]float64, obj.D+1)
	obj.Value(theta, grad)
	largest := 0.0
	for _, g := range grad {
		g = math.Abs(g) / float64(obj.N)
		if math.IsNaN(g) {
			return g
		}
		largest = max(largest, g)
	}
	return largest
}

// lineSearchGuard is the solver's Recorder: it reports each iteration to progress and stops a
// line search after limit evaluations. gonum calls it from the goroutine of Minimize's caller.
type lineSearchGuard struct {
	progress func(int)
	limit    int
	evals    int // evaluations since the last iteration
}

func (g *lineSearchGuard) Init() error { return nil }

func (g *lineSearchGuard) Record(_ *optimize.Location, op optimize.Operation, stats *optimize.Stats) error {
	switch {
	case op == optimize.MajorIteration:
		g.evals = 0
		if g.progress != nil {
			g.progress(stats.MajorIterations)
		}
	case op&optimize.FuncEvaluation != 0 || op&optimize.GradEvaluation != 0:
		g.evals++
		if g.evals > g.limit {
			return errLineSearchStalled
		}
	}
	return nil
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
