package importer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// LightGBM text models, as Booster.save_model writes them (versions v2 to v4): a header of
// key=value lines (objective, num_class, max_feature_idx, feature_names, ...), then one block
// per tree:
//
//	Tree=0
//	num_leaves=3
//	num_cat=0
//	split_feature=2 0
//	threshold=1.5 0.25
//	decision_type=2 10
//	left_child=1 -1
//	right_child=-2 -3
//	leaf_value=0.1 -0.2 0.3
//	shrinkage=0.1
//
// then "end of trees" and parameters the importer ignores. Internal node i splits on
// split_feature[i]; a child >= 0 is an internal node, a child < 0 is leaf ~child. Leaf values
// already include the shrinkage. decision_type packs bit 0: categorical split; bit 1: missing
// values go left; bits 2-3: missing type, 0 None (NaN is read as 0), 1 Zero (0 and NaN are
// missing), 2 NaN. LightGBM's numerical decision (Tree::NumericalDecision in
// include/LightGBM/tree.h) is
//
//	if isnan(x) && missing_type != NaN { x = 0 }
//	if (missing_type == Zero && -1e-35f <= x <= 1e-35f) || (missing_type == NaN && isnan(x)) { go default }
//	go left when x <= threshold
//
// and the probability of objective "binary sigmoid:s" is 1/(1+exp(-s·Σ leaves)).

// lgbZero is LightGBM's kZeroThreshold, the float 1e-35f, as a float64.
var lgbZero = float64(float32(1e-35))

// LightGBM decision_type bits.
const (
	lgbCategorical = 1 << 0
	lgbDefaultLeft = 1 << 1
)

// LightGBM missing types.
const (
	lgbMissingNone = 0
	lgbMissingZero = 1
	lgbMissingNaN  = 2
)

// ParseLightGBM reads a LightGBM text model with objective binary. It refuses, naming what, other
// objectives, multi-class models, random-forest averaging, linear trees and categorical splits.
func ParseLightGBM(data []byte) (*Model, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxModelBytes)
	line := 0
	header := map[string]string{}
	var flags []string
	var trees []map[string]string
	var treeLines []int
	var cur map[string]string
	sawTree, ended := false, false
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" {
			continue
		}
		if s == "end of trees" {
			ended = true
			break
		}
		if line == 1 {
			if s != "tree" {
				return nil, fmt.Errorf("lightgbm: line 1 is %q, want \"tree\": not a LightGBM text model", trunc(s))
			}
			continue
		}
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			if !sawTree {
				flags = append(flags, s)
				continue
			}
			return nil, fmt.Errorf("lightgbm: line %d: %q is not key=value", line, trunc(s))
		}
		if key == "Tree" {
			sawTree = true
			cur = map[string]string{}
			trees = append(trees, cur)
			treeLines = append(treeLines, line)
			if want := strconv.Itoa(len(trees) - 1); val != want {
				return nil, fmt.Errorf("lightgbm: line %d: Tree=%s, want Tree=%s", line, trunc(val), want)
			}
			continue
		}
		m := header
		if sawTree {
			m = cur
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("lightgbm: line %d: %s appears twice", line, trunc(key))
		}
		m[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("lightgbm: line %d: %v", line+1, err)
	}
	if line == 0 {
		return nil, errors.New("lightgbm: empty model file")
	}
	if !ended {
		return nil, errors.New("lightgbm: no \"end of trees\" line: the file is truncated or not a LightGBM text model")
	}
	for _, f := range flags {
		if f == "average_output" {
			return nil, errors.New("lightgbm: average_output (boosting rf, a random forest averaging its trees) is not supported")
		}
	}
	sigmoid, err := lgbObjective(header["objective"])
	if err != nil {
		return nil, err
	}
	if v := header["version"]; v != "v2" && v != "v3" && v != "v4" {
		return nil, fmt.Errorf("lightgbm: version %q is not supported (want v2, v3 or v4)", v)
	}
	if n := header["num_class"]; n != "1" {
		return nil, fmt.Errorf("lightgbm: num_class %q: multi-class models are not supported (want 1)", n)
	}
	if n := header["num_tree_per_iteration"]; n != "" && n != "1" {
		return nil, fmt.Errorf("lightgbm: num_tree_per_iteration %q: want 1", n)
	}
	maxIdx, err := strconv.Atoi(header["max_feature_idx"])
	if err != nil || maxIdx < 0 || maxIdx >= bundle.MaxColumns {
		return nil, fmt.Errorf("lightgbm: max_feature_idx %q: want 0..%d", header["max_feature_idx"], bundle.MaxColumns-1)
	}
	nf := maxIdx + 1
	names := strings.Fields(header["feature_names"])
	if len(names) == 0 {
		names = make([]string, nf)
		for i := range names {
			names[i] = "Column_" + strconv.Itoa(i)
		}
	} else if len(names) != nf {
		return nil, fmt.Errorf("lightgbm: %d feature_names for max_feature_idx %d", len(names), maxIdx)
	}
	if len(trees) == 0 {
		return nil, errors.New("lightgbm: the model has no trees")
	}
	te := &bundle.TreeEnsemble{Comparison: bundle.CompareLessEqual, Trees: make([]bundle.Tree, len(trees))}
	for i, kv := range trees {
		t, err := lgbTree(kv, nf, sigmoid)
		if err != nil {
			return nil, fmt.Errorf("lightgbm: Tree=%d (line %d): %v", i, treeLines[i], err)
		}
		te.Trees[i] = t
	}
	summary := fmt.Sprintf("LightGBM %s model (%d trees, objective %s, %d features)", header["version"], len(trees), header["objective"], nf)
	return &Model{Format: FormatLightGBM, Features: names, Trees: te, Summary: summary}, nil
}

// lgbObjective checks the objective line and returns its sigmoid parameter.
func lgbObjective(obj string) (float64, error) {
	fields := strings.Fields(obj)
	if len(fields) == 0 || fields[0] != "binary" {
		return 0, fmt.Errorf("lightgbm: objective %q is not supported: only binary (a churn probability) is", obj)
	}
	sigmoid := 1.0
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, ":")
		if k != "sigmoid" {
			continue
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || !(s > 0) || math.IsInf(s, 0) {
			return 0, fmt.Errorf("lightgbm: objective %q: sigmoid %q is not a positive number", obj, v)
		}
		sigmoid = s
	}
	return sigmoid, nil
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// lgbNode is one internal node of a LightGBM tree.
type lgbNode struct {
	feature     int32
	threshold   float64
	defaultLeft bool
	missing     int
	left, right int64 // >= 0 internal node, < 0 leaf ^child
}

// lgbTree parses one tree block and lays it out in the bundle's form with leaf values scaled by
// sigmoid.
func lgbTree(kv map[string]string, nf int, sigmoid float64) (bundle.Tree, error) {
	if v := kv["is_linear"]; v != "" && v != "0" {
		return bundle.Tree{}, errors.New("is_linear: linear trees (linear_tree=true) are not supported")
	}
	if v := kv["num_cat"]; v != "" && v != "0" {
		return bundle.Tree{}, fmt.Errorf("num_cat=%s: categorical splits are not supported; code the feature as a number before training", v)
	}
	nl, err := strconv.Atoi(kv["num_leaves"])
	if err != nil || nl < 1 || 2*nl-1 > bundle.MaxTreeNodes {
		return bundle.Tree{}, fmt.Errorf("num_leaves %q: want 1..%d", kv["num_leaves"], (bundle.MaxTreeNodes+1)/2)
	}
	leaves, err := floats(kv, "leaf_value", nl)
	if err != nil {
		return bundle.Tree{}, err
	}
	for i, v := range leaves {
		leaves[i] = v * sigmoid
		if math.IsNaN(leaves[i]) || math.IsInf(leaves[i], 0) {
			return bundle.Tree{}, fmt.Errorf("leaf_value[%d]: %g is not finite", i, v)
		}
	}
	if nl == 1 {
		return bundle.Tree{Feature: []int32{0}, Threshold: []float64{0}, Left: []int32{-1}, Right: []int32{-1}, DefaultLeft: []bool{false}, Value: leaves}, nil
	}
	ni := nl - 1
	feat, err := ints(kv, "split_feature", ni)
	if err != nil {
		return bundle.Tree{}, err
	}
	thr, err := floats(kv, "threshold", ni)
	if err != nil {
		return bundle.Tree{}, err
	}
	dt, err := ints(kv, "decision_type", ni)
	if err != nil {
		return bundle.Tree{}, err
	}
	lc, err := ints(kv, "left_child", ni)
	if err != nil {
		return bundle.Tree{}, err
	}
	rc, err := ints(kv, "right_child", ni)
	if err != nil {
		return bundle.Tree{}, err
	}
	nodes := make([]lgbNode, ni)
	for i := range nodes {
		if feat[i] < 0 || feat[i] >= int64(nf) {
			return bundle.Tree{}, fmt.Errorf("split_feature[%d]: %d outside 0..%d", i, feat[i], nf-1)
		}
		if math.IsNaN(thr[i]) {
			return bundle.Tree{}, fmt.Errorf("threshold[%d] is NaN", i)
		}
		if dt[i] < 0 || dt[i] > 127 {
			return bundle.Tree{}, fmt.Errorf("decision_type[%d]: %d is not a decision type", i, dt[i])
		}
		if dt[i]&lgbCategorical != 0 {
			return bundle.Tree{}, fmt.Errorf("decision_type[%d]: categorical split is not supported", i)
		}
		mt := int(dt[i]>>2) & 3
		if mt == 3 {
			return bundle.Tree{}, fmt.Errorf("decision_type[%d]: unknown missing type 3", i)
		}
		nodes[i] = lgbNode{feature: int32(feat[i]), threshold: thr[i], defaultLeft: dt[i]&lgbDefaultLeft != 0, missing: mt, left: lc[i], right: rc[i]}
	}
	// The structure must be a tree rooted at node 0: every node and leaf reached once.
	seenNode := make([]bool, ni)
	seenLeaf := make([]bool, nl)
	seenNode[0] = true
	stack := []int64{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range []int64{nodes[i].left, nodes[i].right} {
			switch {
			case c >= 0 && c < int64(ni) && !seenNode[c]:
				seenNode[c] = true
				stack = append(stack, c)
			case c < 0 && ^c < int64(nl) && !seenLeaf[^c]:
				seenLeaf[^c] = true
			default:
				return bundle.Tree{}, fmt.Errorf("node %d: child %d is out of range or reached twice (not a tree)", i, c)
			}
		}
	}
	b := lgbBuilder{nodes: nodes, leaves: leaves}
	if _, err := b.emitAt(0); err != nil {
		return bundle.Tree{}, err
	}
	return b.out, nil
}

// lgbBuilder lays a LightGBM tree out in preorder (so children come after their parent),
// rewriting zero-as-missing splits exactly.
type lgbBuilder struct {
	nodes  []lgbNode
	leaves []float64
	out    bundle.Tree
}

// child is a LightGBM child reference: >= 0 an internal node, < 0 leaf ^c.
type child = int64

func (b *lgbBuilder) add(feature int32, threshold float64, defaultLeft bool, value float64, leaf bool) (int32, error) {
	if len(b.out.Left) >= bundle.MaxTreeNodes {
		return 0, fmt.Errorf("rewriting zero-as-missing splits makes more than %d nodes", bundle.MaxTreeNodes)
	}
	k := int32(len(b.out.Left))
	left := int32(0)
	if leaf {
		left = -1
	}
	b.out.Feature = append(b.out.Feature, feature)
	b.out.Threshold = append(b.out.Threshold, threshold)
	b.out.Left = append(b.out.Left, left)
	b.out.Right = append(b.out.Right, left)
	b.out.DefaultLeft = append(b.out.DefaultLeft, defaultLeft)
	b.out.Value = append(b.out.Value, value)
	return k, nil
}

// emitAt lays out the subtree of c and returns the index of its root.
func (b *lgbBuilder) emitAt(c child) (int32, error) {
	if c < 0 {
		return b.add(0, 0, false, b.leaves[^c], true)
	}
	n := b.nodes[c]
	switch n.missing {
	case lgbMissingNone:
		// NaN is read as 0, so it goes where 0 goes.
		return b.split(n.feature, n.threshold, 0 <= n.threshold, n.left, n.right)
	case lgbMissingNaN:
		return b.split(n.feature, n.threshold, n.defaultLeft, n.left, n.right)
	}
	// Zero as missing: NaN and -zf <= x <= zf go to the default side. Where the threshold
	// already sends [-zf, zf] there, one split does.
	zf := lgbZero
	if n.defaultLeft && n.threshold >= zf {
		return b.split(n.feature, n.threshold, true, n.left, n.right)
	}
	if !n.defaultLeft && n.threshold < -zf {
		return b.split(n.feature, n.threshold, false, n.left, n.right)
	}
	// Otherwise three regions: x < -zf (by the threshold), [-zf, zf] and NaN (the default
	// side), x > zf (by the threshold).
	//   n1: x <= below(-zf)? left: region A; right (and NaN): n2
	//   n2: x <= zf?         left (and NaN): the default side; right: region C
	below := math.Nextafter(-zf, math.Inf(-1))
	n1, err := b.add(n.feature, below, false, 0, false)
	if err != nil {
		return 0, err
	}
	var l1 int32
	if n.threshold >= below { // all of A is <= threshold
		l1, err = b.emitAt(n.left)
	} else {
		l1, err = b.split(n.feature, n.threshold, false, n.left, n.right)
	}
	if err != nil {
		return 0, err
	}
	n2, err := b.add(n.feature, zf, true, 0, false)
	if err != nil {
		return 0, err
	}
	def := n.right
	if n.defaultLeft {
		def = n.left
	}
	l2, err := b.emitAt(def)
	if err != nil {
		return 0, err
	}
	var r2 int32
	if n.threshold <= zf { // all of C is > threshold
		r2, err = b.emitAt(n.right)
	} else {
		r2, err = b.split(n.feature, n.threshold, false, n.left, n.right)
	}
	if err != nil {
		return 0, err
	}
	b.out.Left[n1], b.out.Right[n1] = l1, n2
	b.out.Left[n2], b.out.Right[n2] = l2, r2
	return n1, nil
}

// split lays out a plain split on feature at threshold with the given NaN default and the
// subtrees of l and r.
func (b *lgbBuilder) split(feature int32, threshold float64, defaultLeft bool, l, r child) (int32, error) {
	k, err := b.add(feature, threshold, defaultLeft, 0, false)
	if err != nil {
		return 0, err
	}
	li, err := b.emitAt(l)
	if err != nil {
		return 0, err
	}
	ri, err := b.emitAt(r)
	if err != nil {
		return 0, err
	}
	b.out.Left[k], b.out.Right[k] = li, ri
	return k, nil
}

// floats parses the space-separated numbers of key, which must number n.
func floats(kv map[string]string, key string, n int) ([]float64, error) {
	f := strings.Fields(kv[key])
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]float64, n)
	for i, s := range f {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q is not a number", key, i, trunc(s))
		}
		out[i] = x
	}
	return out, nil
}

// ints parses the space-separated integers of key, which must number n.
func ints(kv map[string]string, key string, n int) ([]int64, error) {
	f := strings.Fields(kv[key])
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]int64, n)
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q is not an integer", key, i, trunc(s))
		}
		out[i] = x
	}
	return out, nil
}
