package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// XGBoost JSON models, as Booster.save_model("m.json") writes them since XGBoost 1.0:
//
//	{"version": [1, 7, 4], "learner": {
//	   "feature_names": [...], "feature_types": [...],
//	   "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "5", ...},
//	   "objective": {"name": "binary:logistic", ...},
//	   "gradient_booster": {"name": "gbtree", "model": {"trees": [...], "tree_info": [...], ...}}}}
//
// dart boosters nest the gbtree under "gbtree" and weigh tree i by "weight_drop"[i] at inference;
// the importer multiplies the leaves by the weight. A tree holds parallel arrays; node i is a leaf
// when left_children[i] == -1, with its value in split_conditions[i]; otherwise float32(x) <
// split_conditions[i] goes left, and a missing value goes left when default_left[i].

type xgbFile struct {
	Version []int `json:"version"`
	Learner *struct {
		FeatureNames []string          `json:"feature_names"`
		FeatureTypes []string          `json:"feature_types"`
		Attributes   map[string]string `json:"attributes"`
		Param        struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		Booster json.RawMessage `json:"gradient_booster"`
	} `json:"learner"`
}

type xgbBooster struct {
	Name       string          `json:"name"`
	Model      *xgbModel       `json:"model"`       // gbtree
	GBTree     json.RawMessage `json:"gbtree"`      // dart
	WeightDrop []float64       `json:"weight_drop"` // dart
}

type xgbModel struct {
	Param struct {
		NumParallelTree string `json:"num_parallel_tree"`
		NumTrees        string `json:"num_trees"`
	} `json:"gbtree_model_param"`
	TreeInfo []int     `json:"tree_info"`
	Trees    []xgbTree `json:"trees"`
}

type xgbTree struct {
	Param struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
	SplitIndices    []int64     `json:"split_indices"`
	SplitConditions []xgbNumber `json:"split_conditions"`
	LeftChildren    []int64     `json:"left_children"`
	RightChildren   []int64     `json:"right_children"`
	DefaultLeft     xgbBools    `json:"default_left"`
	SplitType       []int       `json:"split_type"`
}

// xgbBools decodes default_left, written as 0/1 numbers by XGBoost 1.x and as booleans by some
// later versions.
type xgbBools []bool

func (b *xgbBools) UnmarshalJSON(data []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make([]bool, len(raw))
	for i, r := range raw {
		switch strings.TrimSpace(string(r)) {
		case "0", "false":
		case "1", "true":
			out[i] = true
		default:
			return fmt.Errorf("default_left[%d] is %s, want 0, 1, false or true", i, r)
		}
	}
	*b = out
	return nil
}

// ParseXGBoost reads an XGBoost JSON model with objective binary:logistic and a gbtree or dart
// booster. It refuses, naming what, other objectives, multi-class and multi-target models,
// gblinear, and categorical splits.
func ParseXGBoost(data []byte) (*Model, error) {
	var f xgbFile
	if err := json.NewDecoder(bytes.NewReader(quoteNonFinite(data))).Decode(&f); err != nil {
		return nil, fmt.Errorf("xgboost: not an XGBoost JSON model: %v", err)
	}
	l := f.Learner
	if l == nil {
		return nil, errors.New("xgboost: no learner object: want a model saved by XGBoost >= 1.0 with save_model(\"m.json\") (the old binary format and dump_model text are not read)")
	}
	if obj := l.Objective.Name; obj != "binary:logistic" {
		return nil, fmt.Errorf("xgboost: objective %q is not supported: only binary:logistic (a churn probability) is", obj)
	}
	if n := l.Param.NumClass; n != "" && n != "0" && n != "1" {
		return nil, fmt.Errorf("xgboost: num_class %s: multi-class models are not supported", n)
	}
	if n := l.Param.NumTarget; n != "" && n != "1" {
		return nil, fmt.Errorf("xgboost: num_target %s: multi-target models are not supported", n)
	}
	for i, t := range l.FeatureTypes {
		if t == "c" {
			return nil, fmt.Errorf("xgboost: feature %d is categorical (feature_types %q): categorical splits are not supported; one-hot or code the feature before training", i, t)
		}
	}
	base, err := xgbBaseScore(l.Param.BaseScore)
	if err != nil {
		return nil, err
	}
	nf, err := strconv.Atoi(l.Param.NumFeature)
	if err != nil || nf <= 0 || nf > bundle.MaxColumns {
		return nil, fmt.Errorf("xgboost: learner_model_param.num_feature %q: want 1..%d", l.Param.NumFeature, bundle.MaxColumns)
	}
	names := l.FeatureNames
	if len(names) == 0 {
		names = make([]string, nf)
		for i := range names {
			names[i] = "f" + strconv.Itoa(i)
		}
	} else if len(names) != nf {
		return nil, fmt.Errorf("xgboost: %d feature_names for num_feature %d", len(names), nf)
	}

	var booster xgbBooster
	if err := json.Unmarshal(l.Booster, &booster); err != nil {
		return nil, fmt.Errorf("xgboost: gradient_booster: %v", err)
	}
	model, weights := booster.Model, []float64(nil)
	switch booster.Name {
	case "gbtree":
	case "dart":
		var inner xgbBooster
		if err := json.Unmarshal(booster.GBTree, &inner); err != nil || inner.Model == nil {
			return nil, errors.New("xgboost: dart booster without a gbtree model")
		}
		model, weights = inner.Model, booster.WeightDrop
	case "gblinear":
		return nil, errors.New("xgboost: booster gblinear (a linear model) is not supported: import tree boosters (gbtree, dart)")
	default:
		return nil, fmt.Errorf("xgboost: booster %q is not supported (want gbtree or dart)", booster.Name)
	}
	if model == nil || len(model.Trees) == 0 {
		return nil, errors.New("xgboost: the model has no trees")
	}
	if weights != nil && len(weights) != len(model.Trees) {
		return nil, fmt.Errorf("xgboost: dart weight_drop has %d weights for %d trees", len(weights), len(model.Trees))
	}
	for i, g := range model.TreeInfo {
		if g != 0 {
			return nil, fmt.Errorf("xgboost: tree %d belongs to output group %d: multi-output models are not supported", i, g)
		}
	}
	te := &bundle.TreeEnsemble{BaseScore: base, Comparison: bundle.CompareLess, Trees: make([]bundle.Tree, len(model.Trees))}
	for i := range model.Trees {
		w := 1.0
		if weights != nil {
			w = weights[i]
			if !(w >= 0) || math.IsInf(w, 0) {
				return nil, fmt.Errorf("xgboost: dart weight_drop[%d] is %g, want a finite weight >= 0", i, w)
			}
		}
		t, err := model.Trees[i].convert(nf, w)
		if err != nil {
			return nil, fmt.Errorf("xgboost: trees[%d]: %v", i, err)
		}
		te.Trees[i] = t
	}
	summary := fmt.Sprintf("XGBoost %s model (%s, %d trees, binary:logistic, base_score %s, %d features)",
		xgbVersion(f.Version), booster.Name, len(te.Trees), l.Param.BaseScore, nf)
	if bi, err := strconv.Atoi(l.Attributes["best_iteration"]); err == nil && bi+1 < len(te.Trees) {
		// XGBoost's scikit-learn API predicts with trees 0..best_iteration; Booster.predict and
		// this import use them all (the rows verification shows which the rows came from).
		summary += fmt.Sprintf(", early stopping recorded best_iteration %d, all trees imported", bi)
	}
	return &Model{Format: FormatXGBoostJSON, Features: names, Trees: te, Summary: summary}, nil
}

func xgbVersion(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	if len(s) == 0 {
		return "(unknown version)"
	}
	return strings.Join(s, ".")
}

// xgbBaseScore turns base_score, a probability for binary:logistic ("5E-1", or "[5E-1]" as
// XGBoost 3 writes it), into the margin logit(base_score).
func xgbBaseScore(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	p, err := strconv.ParseFloat(t, 64)
	if err != nil || !(p > 0 && p < 1) {
		return 0, fmt.Errorf("xgboost: learner_model_param.base_score %q: want a probability in (0,1)", s)
	}
	return math.Log(p / (1 - p)), nil
}

// convert checks one tree and lays it out from its root: node 0 the root, children after their
// parent, unreachable (deleted) nodes left out.
func (t *xgbTree) convert(nf int, weight float64) (bundle.Tree, error) {
	n := len(t.LeftChildren)
	if n == 0 || n > bundle.MaxTreeNodes {
		return bundle.Tree{}, fmt.Errorf("has %d nodes, want 1..%d", n, bundle.MaxTreeNodes)
	}
	if s := t.Param.SizeLeafVector; s != "" && s != "0" && s != "1" {
		return bundle.Tree{}, fmt.Errorf("size_leaf_vector %s: vector leaves (multi-target trees) are not supported", s)
	}
	if len(t.RightChildren) != n || len(t.SplitIndices) != n || len(t.SplitConditions) != n || len(t.DefaultLeft) != n {
		return bundle.Tree{}, fmt.Errorf("left_children, right_children, split_indices, split_conditions and default_left must have %d entries each", n)
	}
	if len(t.SplitType) != 0 && len(t.SplitType) != n {
		return bundle.Tree{}, fmt.Errorf("split_type has %d entries for %d nodes", len(t.SplitType), n)
	}
	var out bundle.Tree
	visited := make([]bool, n)
	// order[k] is the source node that becomes node k; a split's children are appended when it
	// is laid out, so they come after it.
	order := []int64{0}
	visited[0] = true
	for k := 0; k < len(order); k++ {
		i := order[k]
		l, r := t.LeftChildren[i], t.RightChildren[i]
		if l == -1 {
			if r != -1 {
				return bundle.Tree{}, fmt.Errorf("node %d: left child -1 but right child %d", i, r)
			}
			leaf, err := parseFloat32(t.SplitConditions[i])
			if err != nil {
				return bundle.Tree{}, fmt.Errorf("node %d: leaf value: %v", i, err)
			}
			v := leaf * weight
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return bundle.Tree{}, fmt.Errorf("node %d: leaf value %g is not finite", i, v)
			}
			out.Feature = append(out.Feature, 0)
			out.Threshold = append(out.Threshold, 0)
			out.Left = append(out.Left, -1)
			out.Right = append(out.Right, -1)
			out.DefaultLeft = append(out.DefaultLeft, false)
			out.Value = append(out.Value, v)
			continue
		}
		if len(t.SplitType) > 0 && t.SplitType[i] != 0 {
			return bundle.Tree{}, fmt.Errorf("node %d: categorical split (split_type %d) is not supported", i, t.SplitType[i])
		}
		for _, c := range []int64{l, r} {
			if c < 0 || c >= int64(n) {
				return bundle.Tree{}, fmt.Errorf("node %d: child %d outside 0..%d", i, c, n-1)
			}
			if visited[c] {
				return bundle.Tree{}, fmt.Errorf("node %d: child %d is reached twice (not a tree)", i, c)
			}
			visited[c] = true
		}
		fi := t.SplitIndices[i]
		if fi < 0 || fi >= int64(nf) {
			return bundle.Tree{}, fmt.Errorf("node %d: split index %d outside 0..%d", i, fi, nf-1)
		}
		c, err := parseFloat32(t.SplitConditions[i])
		if err != nil {
			return bundle.Tree{}, fmt.Errorf("node %d: split condition: %v", i, err)
		}
		th, err := float32LessThreshold(float32(c))
		if err != nil {
			return bundle.Tree{}, fmt.Errorf("node %d: %v", i, err)
		}
		k2 := int32(len(order))
		order = append(order, l, r)
		out.Feature = append(out.Feature, int32(fi))
		out.Threshold = append(out.Threshold, th)
		out.Left = append(out.Left, k2)
		out.Right = append(out.Right, k2+1)
		out.DefaultLeft = append(out.DefaultLeft, t.DefaultLeft[i])
		out.Value = append(out.Value, 0)
	}
	return out, nil
}

// xgbNumber is the text of a number: a JSON number, or "NaN", "Infinity" or "-Infinity" (see
// quoteNonFinite).
type xgbNumber string

func (n *xgbNumber) UnmarshalJSON(data []byte) error {
	*n = xgbNumber(strings.Trim(string(data), `"`))
	return nil
}

// quoteNonFinite quotes the bare NaN, Infinity and -Infinity tokens XGBoost writes for
// non-finite floats (categorical splits have NaN split conditions), which are not JSON, so the
// model decodes and the importer can say what it does not support. Strings are left alone.
func quoteNonFinite(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	out := make([]byte, 0, len(data)+64)
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case bytes.HasPrefix(data[i:], []byte("NaN")):
			out = append(out, `"NaN"`...)
			i += len("NaN") - 1
			continue
		case bytes.HasPrefix(data[i:], []byte("-Infinity")):
			out = append(out, `"-Infinity"`...)
			i += len("-Infinity") - 1
			continue
		case bytes.HasPrefix(data[i:], []byte("Infinity")):
			out = append(out, `"Infinity"`...)
			i += len("Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// parseFloat32 parses a number XGBoost wrote from a float32, rounding the text to float32 directly
// (rounding it to float64 first could round twice).
func parseFloat32(n xgbNumber) (float64, error) {
	x, err := strconv.ParseFloat(string(n), 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a float32", string(n))
	}
	return x, nil
}

// twoTo128 stands in for ±Inf as a float32 neighbour: float32 rounding sends x to +Inf when it is
// at or past the midpoint of MaxFloat32 and 2^128.
const twoTo128 = 340282366920938463463374607431768211456.0

// float32LessThreshold returns the float64 threshold T with, for every float64 x that is not NaN,
// x < T exactly when float32(x) < t, XGBoost's split test. T is the midpoint between
// t and the float32 below it, where a value rounds either way; at the midpoint itself
// float32 rounding goes to the neighbour with the even significand, so the midpoint goes left
// when that is the lower one.
func float32LessThreshold(t float32) (float64, error) {
	if t != t {
		return 0, errors.New("split condition is NaN")
	}
	if math.IsInf(float64(t), -1) {
		return math.Inf(-1), nil // nothing is below -Inf
	}
	hi := float64(t)
	if math.IsInf(hi, 1) {
		hi = twoTo128
	}
	p := math.Nextafter32(t, float32(math.Inf(-1)))
	lo := float64(p)
	lowerEven := math.Float32bits(p)&1 == 0
	if math.IsInf(lo, -1) {
		lo, lowerEven = -twoTo128, true
	}
	m := lo/2 + hi/2 // exact: both halves are exact, and so is their sum (at most 25 significant bits)
	if lowerEven {
		return math.Nextafter(m, math.Inf(1)), nil
	}
	return m, nil
}
