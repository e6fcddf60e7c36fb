package scoring

import (
	"github.com/churnhq/churn/internal/bundle"
)

// attrTree is a tree kept in the bundle's plain layout for attribution, with the expected value
// of every node. The bundle stores no node covers (how many training rows reach a node), so a
// node's expected value is the plain mean of its children's; the contributions still add up to
// the margin exactly, whatever the weights, because each step adds child − parent.
type attrTree struct {
	feature     []int32
	threshold   []float64
	left, right []int32
	defaultLeft []bool
	mean        []float64
}

func compileAttribution(te *bundle.TreeEnsemble) []attrTree {
	out := make([]attrTree, len(te.Trees))
	for ti, t := range te.Trees {
		mean := make([]float64, len(t.Left))
		for i := len(t.Left) - 1; i >= 0; i-- { // children come after their parent
			if t.Left[i] == -1 {
				mean[i] = t.Value[i]
			} else {
				mean[i] = (mean[t.Left[i]] + mean[t.Right[i]]) / 2
			}
		}
		out[ti] = attrTree{t.Feature, t.Threshold, t.Left, t.Right, t.DefaultLeft, mean}
	}
	return out
}

// Contributions writes each column's contribution to the margin of x into dst[:Width()] and
// returns the base, so that base + Σ dst equals Margin(x) (to rounding). For a logistic model
// the contribution of column i is Weights[i]·x[i] and the base the intercept: exact, and since
// numeric columns are standardised, a column at its training mean contributes nothing. For a
// tree ensemble it is the path attribution of each tree (Saabas): every split on a column adds
// the change of the expected value from the node to the child taken; the base is BaseScore plus
// the trees' root expectations. It does not allocate.
func (e *Evaluator) Contributions(x, dst []float64) (base float64) {
	dst = dst[:e.width]
	if e.kind == kindLogistic {
		for i, w := range e.weights {
			dst[i] = w * x[i]
		}
		return e.intercept
	}
	clear(dst)
	base = e.attrBase
	for t := range e.attr {
		tr := &e.attr[t]
		i := int32(0)
		base += tr.mean[0]
		for tr.left[i] != -1 {
			v := x[tr.feature[i]]
			var next int32
			switch {
			case v != v:
				next = tr.right[i]
				if tr.defaultLeft[i] {
					next = tr.left[i]
				}
			case v < tr.threshold[i] || (e.attrLessEqual && v == tr.threshold[i]):
				next = tr.left[i]
			default:
				next = tr.right[i]
			}
			dst[tr.feature[i]] += tr.mean[next] - tr.mean[i]
			i = next
		}
	}
	return base
}
