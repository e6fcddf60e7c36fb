package scoring

import (
	"math"

	"github.com/churnhq/churn/internal/bundle"
)

// node is one node of a compiled tree ensemble: 16 bytes, four to a 64-byte cache line.
//
// Layout and why:
//   - threshold is a split's threshold. For an "le" ensemble it is stored as the equivalent "lt"
//     threshold (see lessThreshold), so one walk serves both comparisons.
//   - left is the absolute index of the left child in forest.nodes; the right child is always
//     left+1, so one index serves both and "go right" is an add of 0 or 1, computed without a
//     branch (see step).
//   - feature is a split's column (bundle.MaxColumns is 4096; New checks the width fits).
//   - nanRight is 1 when a missing (NaN) value goes right, 0 when it goes left (DefaultLeft), so
//     the NaN case is the same add, again without a branch.
//
// A leaf is its own child: left is its own index, threshold NaN (no x is >= NaN), feature 0 and
// nanRight 0, so a step from a leaf stays on it. Walks need no leaf test: eight trees are walked
// in lockstep for as many steps as the deepest of them is deep, and the walks that end early
// wait on their leaf. The leaf's value lives in forest.leaves at the same index, read once per
// tree, which keeps the nodes every step reads at 16 bytes rather than 24 (300 full trees of
// depth 6: 595 KiB of nodes instead of 893 KiB).
//
// The nodes of all trees are laid out breadth-first across the whole ensemble: the roots of
// trees 0..T-1 are nodes 0..T-1 (so a tree needs no root index), then every tree's depth-1 nodes,
// and so on, with siblings adjacent. The levels every row visits are dense: the first three
// levels of 300 trees take 33 KiB, about an L1 data cache, instead of being spread over the
// whole 595 KiB.
type node struct {
	threshold float64
	left      uint32
	feature   uint16
	nanRight  uint16
}

// forest is a compiled tree ensemble.
type forest struct {
	base   float64
	ntrees int
	nodes  []node
	// leaves[i] is the value of leaf node i (0 for a split).
	leaves []float64
	// steps[g] is the depth of the deepest tree among trees g*group .. g*group+group-1.
	steps []int
	// sink is a leaf of value 0 that stands in for the missing trees of the last group.
	sink uint32
	// attrBase is the base of the attribution: base plus every tree's root expectation.
	attrBase float64
	// paths is the attribution of every leaf, for explain; its off is nil when the table would be
	// too large (maxPathSteps, maxPathTable), and attr stands in.
	paths pathTable
	// attr is the forest in the bundle's layout for walkContributions, without a path table only.
	attr          []attrTree
	attrLessEqual bool
}

// treeNode names node node of tree tree of a bundle's ensemble.
type treeNode struct{ tree, node, depth int32 }

// compileForest lays out a validated ensemble (bundle.Validate checks what the layout relies on:
// one entry per node in every array, children after their parent and of one parent each, columns
// below width and so below 1<<16, no NaN threshold, finite leaves whose sum cannot overflow, at
// most bundle.MaxEnsembleNodes nodes, so every index fits a uint32).
func compileForest(te *bundle.TreeEnsemble, width int) forest {
	le := te.Comparison == bundle.CompareLessEqual
	total := 0
	for i := range te.Trees {
		total += len(te.Trees[i].Left)
	}

	// Breadth-first over the whole ensemble. queue[k] is the (tree, node, depth) that becomes
	// nodes[k]; a split's children are appended together, so they are adjacent.
	queue := make([]treeNode, 0, total)
	for t := range te.Trees {
		queue = append(queue, treeNode{int32(t), 0, 0})
	}
	nodes := make([]node, 0, total+1)
	leaves := make([]float64, 0, total+1)
	depth := make([]int, len(te.Trees))
	for k := 0; k < len(queue); k++ {
		q := queue[k]
		tr := &te.Trees[q.tree]
		i := q.node
		if tr.Left[i] == -1 {
			nodes = append(nodes, node{threshold: math.NaN(), left: uint32(k)})
			leaves = append(leaves, tr.Value[i])
			depth[q.tree] = max(depth[q.tree], int(q.depth))
			continue
		}
		n := node{threshold: tr.Threshold[i], left: uint32(len(queue)), feature: uint16(tr.Feature[i])}
		if le {
			n.threshold = lessThreshold(n.threshold)
		}
		if !tr.DefaultLeft[i] {
			n.nanRight = 1
		}
		nodes = append(nodes, n)
		leaves = append(leaves, 0)
		queue = append(queue, treeNode{q.tree, tr.Left[i], q.depth + 1}, treeNode{q.tree, tr.Right[i], q.depth + 1})
	}
	sink := uint32(len(nodes))
	nodes = append(nodes, node{threshold: math.NaN(), left: sink})
	leaves = append(leaves, 0)
	f := forest{base: te.BaseScore, ntrees: len(te.Trees), nodes: nodes, leaves: leaves, sink: sink}
	f.steps = make([]int, (len(te.Trees)+group-1)/group)
	for t, d := range depth {
		f.steps[t/group] = max(f.steps[t/group], d)
	}
	means := make([][]float64, len(te.Trees))
	f.attrBase = te.BaseScore
	for t := range te.Trees {
		means[t] = expectations(&te.Trees[t])
		f.attrBase += means[t][0]
	}
	var ok bool
	if f.paths, ok = buildPaths(te, means, queue, len(nodes), width); !ok {
		f.attr, f.attrLessEqual = compileAttribution(te, means), le
	}
	return f
}

// lessThreshold returns the threshold t' of an "lt" split equivalent to the "le" split at t: for
// every x that is not NaN, x < t' exactly when x <= t. That is the next float64 above t, since no
// float64 lies between t and it (for t = -0 or +0 it is the least positive subnormal, and
// x <= ±0 is x < 5e-324). For t = +Inf, where every x goes left and no float64 is above it, t'
// is NaN: x >= NaN is false for every x, so step sends every x left; a NaN x still follows the
// split's default. (Leaves hold a NaN threshold too; a leaf is told by left, never by NaN.)
func lessThreshold(t float64) float64 {
	if math.IsInf(t, 1) {
		return math.NaN()
	}
	return math.Nextafter(t, math.Inf(1))
}

// group is the number of trees walked together, interleaved. The walks of different trees are
// independent, so the processor overlaps their loads instead of waiting on one tree's chain of
// node, column and comparison. Eight cursors are about as many as the registers hold. Measured
// on 300 full trees of depth 6 (AMD EPYC, Go 1.26), before leaves became self-loops: 3.2 µs with
// 8 cursors, 4.0 µs with 4, 4.4 µs walking one tree at a time, 4.0 µs with 16 cursors in an
// array. Self-loops then took 300x6 to 3.0 µs and ragged trees (BenchmarkTrees/300x10/ragged)
// from 7.4 µs to 4.4 µs, as the leaf test of each step was a mispredicted branch.
const group = 8

// margin walks every tree, eight at a time in lockstep, as many steps as the deepest of the
// eight is deep: a walk that reaches a leaf stays there, so no step tests for a leaf. Then it
// adds the leaf values in tree order. (forest.explain repeats this walk: one walk function shared
// by both, returning the eight leaves, made margin 9–14% slower in BenchmarkTrees.)
func (f *forest) margin(x []float64) float64 {
	nodes, leaves := f.nodes, f.leaves
	m := f.base
	for g, steps := range f.steps {
		t := g * group
		i0, i1, i2, i3 := f.root(t), f.root(t+1), f.root(t+2), f.root(t+3)
		i4, i5, i6, i7 := f.root(t+4), f.root(t+5), f.root(t+6), f.root(t+7)
		for range steps {
			i0 = step(nodes, x, i0)
			i1 = step(nodes, x, i1)
			i2 = step(nodes, x, i2)
			i3 = step(nodes, x, i3)
			i4 = step(nodes, x, i4)
			i5 = step(nodes, x, i5)
			i6 = step(nodes, x, i6)
			i7 = step(nodes, x, i7)
		}
		if t+group <= f.ntrees {
			m += leaves[i0]
			m += leaves[i1]
			m += leaves[i2]
			m += leaves[i3]
			m += leaves[i4]
			m += leaves[i5]
			m += leaves[i6]
			m += leaves[i7]
			continue
		}
		// The last group is short: add only its real trees (adding the sink's 0 could turn a
		// margin of -0 into +0).
		ends := [group]uint32{i0, i1, i2, i3, i4, i5, i6, i7}
		for _, i := range ends[:f.ntrees-t] {
			m += leaves[i]
		}
	}
	return m
}

// root is the root of tree t, or the sink past the last tree.
func (f *forest) root(t int) uint32 {
	if t < f.ntrees {
		return uint32(t)
	}
	return f.sink
}

// step goes from split i to its child: right when x >= threshold, or when x is NaN and the
// split's default is right; from leaf i it goes to i. It has no branch: the comparison becomes a
// SETcc, the NaN test integer arithmetic (isNaN), and the child an add. A branch on the
// comparison would be mispredicted about half the time, and one on NaN whenever rows miss values
// (with 20% of the inputs missing it made 300x6 2.3 times slower). The compiler makes no
// conditional move here (the value feeds an address), and a second floating-point comparison for
// NaN made 300x6 three times slower too: its SETcc writes to byte registers carried a false
// dependency from one walk to the next.
func step(nodes []node, x []float64, i uint32) uint32 {
	n := &nodes[i]
	v := x[n.feature]
	return n.left + (b2u(v >= n.threshold) | isNaN(v)&uint32(n.nanRight))
}

// b2u is 1 for true, 0 for false; the compiler makes it a SETcc, not a branch.
func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// isNaN is 1 when v is NaN, else 0, by integer arithmetic alone: no compare, no flags, no branch.
// The magnitude bits of a NaN exceed those of +Inf, 0x7ff0000000000000, so the subtraction
// borrows into bit 63.
func isNaN(v float64) uint32 {
	const inf = 0x7ff0000000000000
	return uint32((inf - math.Float64bits(v)&^(1<<63)) >> 63)
}
