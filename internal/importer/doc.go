// Package importer turns a model trained by another library into a churn model bundle. That is its
// one job: it reads the foreign model file (one file per format: XGBoost JSON, LightGBM text,
// scikit-learn logistic regression in the JSON documented in sklearn.go), maps the model's
// feature columns onto CustomerFeatures by a small import schema (schema.go: a numeric feature
// onto a numeric source, a group of one-hot columns onto one categorical input, whose columns the
// trees' splits and the weights are rewired to), proves on rows the
// library itself scored that serving computes the library's probabilities (to a tolerance,
// 1e-6 by default), and returns a validated bundle whose check vectors are some of those rows.
//
// # Path of an import
//
//	Parse{XGBoost,LightGBM,Sklearn}(model file) → *Model   (format-specific, refuses what it cannot express)
//	ParseSchema(schema file)                     → *Schema  (model feature → CustomerFeatures source)
//	ParseRows(check-rows CSV)                    → []Row    (feature values + the library's probability)
//	Build(model, schema, rows, Options)          → *bundle.Bundle, Report
//
// Build runs every row through the serving path itself (internal/features maps the row's
// CustomerFeatures by the bundle's schema, internal/scoring evaluates), refuses the import when
// any row differs from the library's probability by more than the tolerance, and finally loads
// the encoded bundle with internal/model.Load, the gate every served bundle passes.
//
// # Exactness
//
// The bundle's tree format has one comparison per ensemble and a per-node default direction for
// NaN. Foreign semantics that do not map onto it one to one are rewritten exactly, not
// approximated:
//
//   - XGBoost compares float32(x) < float32 threshold. The importer stores, for each threshold t,
//     the float64 threshold t' with x < t' exactly when float32(x) < t (the midpoint between t
//     and the float32 below it, adjusted for round-half-to-even), so float64 serving sends every
//     value the way XGBoost does.
//   - LightGBM's missing type None turns NaN into 0 before the comparison: the default direction
//     becomes the side 0 goes to. Missing type Zero sends NaN and every |x| <= 1e-35 (float32) to
//     the default side; where the threshold does not already do so, the node is rewritten as a
//     small subtree of plain splits (copying the children) that does.
//
// The check vectors store the probability serving computes (they must reproduce to
// bundle.CheckTolerance, and XGBoost computes in float32); their agreement with the library's own
// probability is what Build verified, and Report records the largest difference.
//
// Everything here is hand-written on the standard library and encoding/json, because no Go
// library hands back the trees in a form the bundle can hold with the libraries' exact semantics:
// github.com/dmitryikh/leaves reads LightGBM text and pre-1.0 XGBoost binaries but evaluates them
// itself and does not expose the parsed trees; github.com/Elvenson/xgboost-go (v0.1.4, 2023) reads
// dump_model JSON, not save_model JSON, and documents that its results differ from XGBoost's by
// float precision (it compares in float64); github.com/maxmind/xgb2code generates Go source. Each
// format here is a few hundred lines.
package importer
