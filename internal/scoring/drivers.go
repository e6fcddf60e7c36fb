package scoring

import (
	"github.com/churnhq/churn/internal/bundle"
)

// pathStep is one column's share of a leaf's path: the sum, over the splits on that column
// between the root and the leaf, of the change of the expected value from each split to the
// child taken.
type pathStep struct {
	delta float64
	col   uint32
}

// maxPathSteps bounds a forest's path table to this many steps per compiled node. Gradient-boosted
// trees need a few (the default model: 2.5, 16,809 steps for 6,734 nodes; full trees of depth 10
// at most 5); a bundle of long chains over many columns would need a table quadratic in its
// depth, and gets the walk-down attribution instead (attrTree).
const maxPathSteps = 8

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

// buildPaths makes the path table of a forest whose node k came from bundle node origin[k], or
// returns false when it would exceed maxPathSteps per node.
func buildPaths(te *bundle.TreeEnsemble, means [][]float64, origin []treeNode, nodes, width int) (pathTable, bool) {
	limit := maxPathSteps * nodes
	parents := make([][]int32, len(te.Trees))
	for ti := range te.Trees {
		t := &te.Trees[ti]
		p := make([]int32, len(t.Left))
		for i := range t.Left {
			if t.Left[i] != -1 {
				p[t.Left[i]], p[t.Right[i]] = int32(i), int32(i)
			}
		}
		parents[ti] = p
	}
	// slot[c] is the index in pt.steps of column c's step for the current leaf, or -1.
	slot := make([]int, width)
	for c := range slot {
		slot[c] = -1
	}
	pt := pathTable{off: make([]uint32, nodes+1)}
	for k, o := range origin {
		pt.off[k] = uint32(len(pt.steps))
		t := &te.Trees[o.tree]
		if t.Left[o.node] != -1 {
			continue
		}
		start := len(pt.steps)
		for c := o.node; c != 0; {
			p := parents[o.tree][c]
			col := t.Feature[p]
			d := means[o.tree][c] - means[o.tree][p]
			if s := slot[col]; s >= 0 {
				pt.steps[s].delta += d
			} else {
				slot[col] = len(pt.steps)
				pt.steps = append(pt.steps, pathStep{d, uint32(col)})
			}
			c = p
		}
		for _, s := range pt.steps[start:] {
			slot[s.col] = -1
		}
		if len(pt.steps) > limit {
			return pathTable{}, false
		}
	}
	for k := len(origin); k <= nodes; k++ { // the sink, and the end of the last node's steps
		pt.off[k] = uint32(len(pt.steps))
	}
	return pt, true
}

// attrTree is a tree kept in the bundle's plain layout, with the expected value of every node, for
// the forests too large for a path table.
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
		out[ti] = attrTree{t.Feature, t.Threshold, t.Left, t.Right, t.DefaultLeft, expectations(&te.Trees[ti])}
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
	return e.trees.margin(x[:e.width]), e.walkContributions(x, dst)
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
func (e *Evaluator) walkContributions(x, dst []float64) float64 {
	base := e.trees.attrBase
	for t := range e.attr {
		tr := &e.attr[t]
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
