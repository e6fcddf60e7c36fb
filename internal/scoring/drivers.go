package scoring

import (
	"slices"

	"github.com/churnhq/churn/internal/bundle"
)

// pathStep is one column's share of a leaf's path: the sum, over the splits on that column
// between the root and the leaf, of the change of the expected value from each split to the
// child taken.
type pathStep struct {
	delta float64
	col   uint32
}

// maxPathSteps bounds a forest's path table to this many steps per compiled node (96 bytes per
// node of 16-byte steps). Gradient-boosted trees need a few: the default model 2.5 (16,780 steps
// for 6,734 nodes), full trees of depth 10 at most 5. A bundle of long chains over many columns
// would need a table quadratic in its depth, and keeps the walk-down attribution (attrTree).
const maxPathSteps = 6

// maxPathTable bounds a path table whatever the forest's size: 1 Mi steps, 16 MiB (the default
// model has 16,780 steps; 300 XGBoost trees of depth 6 about 100,000). A larger forest keeps the
// walk-down attribution, so that a few large model versions loaded side by side cannot multiply
// the service's memory.
const maxPathTable = 1 << 20

// expectations returns the expected value of every node of a tree. The bundle stores no node
// covers (how many training rows reach a node), so a node's expected value is the plain mean of
// its children's; the contributions still add up to the margin exactly, whatever the weights,
// because each step adds child − parent. The tree must have passed checkTree.
func expectations(t *bundle.Tree) []float64 {
	mean := make([]float64, len(t.Left))
	for i := len(t.Left) - 1; i >= 0; i-- { // children come after their parent
		if t.Left[i] == -1 {
			mean[i] = t.Value[i]
		} else {
			mean[i] = (mean[t.Left[i]] + mean[t.Right[i]]) / 2
		}
	}
	return mean
}

// pathTable is the attribution of every leaf of a compiled forest, precomputed: the steps of
// compiled node i are steps[off[i]:off[i+1]] (none for a split or the sink). With it, explaining a
// row costs the margin's own walk plus a few additions per tree, instead of a second walk that
// branches on every split.
type pathTable struct {
	off   []uint32
	steps []pathStep
}

// buildPaths makes the path table of a forest whose node k came from bundle node origin[k] (means
// are the trees' expectations), or returns false when it would have more than maxPathSteps steps
// per node or maxPathTable in all. A first depth-first walk counts each leaf's steps and gives up
// before allocating anything when there are too many; a second writes them where the count put
// them. Each walk is linear in the nodes, whatever the trees' depth, plus the steps written.
func buildPaths(te *bundle.TreeEnsemble, means [][]float64, origin []treeNode, nodes, width int) (pathTable, bool) {
	limit := min(maxPathSteps*nodes, maxPathTable)
	w := newPathWalker(width)
	// at[t][i] is first the number of steps of leaf i of tree t, then where they start in steps.
	at := make([][]uint32, len(te.Trees))
	total := 0
	for t := range te.Trees {
		at[t] = make([]uint32, len(te.Trees[t].Left))
		fits := w.walk(&te.Trees[t], means[t], func(leaf int32, cols []uint32, _ []float64) bool {
			at[t][leaf] = uint32(len(cols))
			total += len(cols)
			return total <= limit
		})
		if !fits {
			return pathTable{}, false
		}
	}
	pt := pathTable{off: make([]uint32, nodes+1), steps: make([]pathStep, total)}
	n := uint32(0)
	for k, o := range origin {
		pt.off[k] = n
		if te.Trees[o.tree].Left[o.node] == -1 {
			n, at[o.tree][o.node] = n+at[o.tree][o.node], n
		}
	}
	for k := len(origin); k <= nodes; k++ { // the sink, and the end of the last node's steps
		pt.off[k] = n
	}
	for t := range te.Trees {
		w.walk(&te.Trees[t], means[t], func(leaf int32, cols []uint32, acc []float64) bool {
			steps := pt.steps[at[t][leaf]:]
			for j, c := range cols {
				steps[j] = pathStep{acc[c], c}
			}
			return true
		})
	}
	return pt, true
}

// pathWalker walks trees depth first, keeping each column's sum of steps along the current path.
type pathWalker struct {
	acc   []float64 // each column's sum along the current path
	cnt   []int32   // how many splits of the current path are on each column
	cols  []uint32  // the columns of the current path, in order of first split
	stack []pathFrame
}

type pathFrame struct {
	node, parent int32 // parent -1 for the root
	prev         float64
	entered      bool
}

func newPathWalker(width int) *pathWalker {
	return &pathWalker{acc: make([]float64, width), cnt: make([]int32, width)}
}

// walk calls leaf for every leaf reachable from the root of t, with the columns its path splits
// on (in order of first split) and their sums (acc[c] for column c), until leaf returns false;
// it returns false then, true otherwise. The slices are the walker's: valid during the call only.
// After a whole walk the walker is as new.
func (w *pathWalker) walk(t *bundle.Tree, mean []float64, leaf func(i int32, cols []uint32, acc []float64) bool) bool {
	acc, cnt := w.acc, w.cnt
	w.stack = append(w.stack[:0], pathFrame{node: 0, parent: -1})
	for len(w.stack) > 0 {
		f := &w.stack[len(w.stack)-1]
		i := f.node
		if !f.entered { // enter i: the split of its parent adds i's change to that column
			f.entered = true
			if f.parent >= 0 {
				c := t.Feature[f.parent]
				f.prev = acc[c]
				acc[c] += mean[i] - mean[f.parent]
				if cnt[c] == 0 {
					w.cols = append(w.cols, uint32(c))
				}
				cnt[c]++
			}
			if t.Left[i] != -1 {
				w.stack = append(w.stack, pathFrame{node: t.Right[i], parent: i}, pathFrame{node: t.Left[i], parent: i})
				continue
			}
			if !leaf(i, w.cols, acc) {
				return false
			}
		}
		// Leave i (a leaf, or a split whose children are done): undo what entering did.
		if f.parent >= 0 {
			c := t.Feature[f.parent]
			acc[c] = f.prev
			if cnt[c]--; cnt[c] == 0 {
				w.cols = w.cols[:len(w.cols)-1] // the column entered last is the first to go
			}
		}
		w.stack = w.stack[:len(w.stack)-1]
	}
	return true
}

// attrTree is a tree in the bundle's plain layout (copied), with the expected value of every
// node, for the forests too large for a path table.
type attrTree struct {
	feature     []int32
	threshold   []float64
	left, right []int32
	defaultLeft []bool
	mean        []float64
}

func compileAttribution(te *bundle.TreeEnsemble, means [][]float64) []attrTree {
	out := make([]attrTree, len(te.Trees))
	for ti, t := range te.Trees {
		out[ti] = attrTree{slices.Clone(t.Feature), slices.Clone(t.Threshold), slices.Clone(t.Left), slices.Clone(t.Right), slices.Clone(t.DefaultLeft), means[ti]}
	}
	return out
}

// Explain returns the margin of x, exactly as Margin does, and writes each column's contribution
// to it into dst[:Width()], returning the base they add to: base + Σ dst equals the margin (to
// rounding). For a logistic model the contribution of column i is Weights[i]·x[i] and the base
// the intercept: exact, and since numeric columns are standardised, a column at its training mean
// contributes nothing. For a tree ensemble it is the path attribution of each tree (Saabas):
// every split on a column adds the change of the expected value from the node to the child
// taken; the base is BaseScore plus the trees' root expectations. It does not allocate.
func (e *Evaluator) Explain(x, dst []float64) (margin, base float64) {
	dst = dst[:e.width]
	if e.kind == kindLogistic {
		w := e.weights
		x = x[:len(w)]
		m := e.intercept
		for i := range w {
			c := float64(w[i] * x[i]) // rounded, never fused: Margin's sum, bit for bit
			dst[i] = c
			m += c
		}
		return m, e.intercept
	}
	clear(dst)
	if e.trees.paths.off != nil {
		return e.trees.explain(x[:e.width], dst), e.trees.attrBase
	}
	return e.trees.margin(x[:e.width]), e.trees.walkContributions(x, dst)
}

// explain is margin that also adds the path steps of each leaf reached to dst: the same walk,
// the same sum in the same order, so the same margin bit for bit.
func (f *forest) explain(x, dst []float64) float64 {
	nodes, leaves, off, steps := f.nodes, f.leaves, f.paths.off, f.paths.steps
	m := f.base
	for g, n := range f.steps {
		t := g * group
		i0, i1, i2, i3 := f.root(t), f.root(t+1), f.root(t+2), f.root(t+3)
		i4, i5, i6, i7 := f.root(t+4), f.root(t+5), f.root(t+6), f.root(t+7)
		for range n {
			i0 = step(nodes, x, i0)
			i1 = step(nodes, x, i1)
			i2 = step(nodes, x, i2)
			i3 = step(nodes, x, i3)
			i4 = step(nodes, x, i4)
			i5 = step(nodes, x, i5)
			i6 = step(nodes, x, i6)
			i7 = step(nodes, x, i7)
		}
		ends := [group]uint32{i0, i1, i2, i3, i4, i5, i6, i7}
		for _, i := range ends[:min(group, f.ntrees-t)] {
			m += leaves[i]
			for _, s := range steps[off[i]:off[i+1]] {
				dst[s.col] += s.delta
			}
		}
	}
	return m
}

// walkContributions is the attribution without a path table: a second walk of every tree over
// the bundle's layout. dst must be cleared.
func (f *forest) walkContributions(x, dst []float64) float64 {
	for t := range f.attr {
		tr := &f.attr[t]
		i := int32(0)
		for tr.left[i] != -1 {
			v := x[tr.feature[i]]
			var next int32
			switch {
			case v != v:
				next = tr.right[i]
				if tr.defaultLeft[i] {
					next = tr.left[i]
				}
			case v < tr.threshold[i] || (f.attrLessEqual && v == tr.threshold[i]):
				next = tr.left[i]
			default:
				next = tr.right[i]
			}
			dst[tr.feature[i]] += tr.mean[next] - tr.mean[i]
			i = next
		}
	}
	return f.attrBase
}
