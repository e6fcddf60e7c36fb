// Package train fits churn models on CSV data and evaluates them: its one job is to turn a
// dataset (a CSV file plus a dataset spec that maps its columns to CustomerFeatures sources) into
// a model bundle whose check vectors the serving code reproduces, and to measure the model on
// held-out rows.
//
// The pieces, in the order churnctl train uses them:
//
//   - ParseSpec reads a dataset spec (spec.go), which may declare derived inputs (sums, ratios, …
//     of other inputs) that the bundle computes at serving time;
//   - ReadCSV reads the CSV under that spec (data.go);
//   - ReadIndices or StratifiedSplit choose the held-out rows (split.go);
//   - Run (run.go) cross-fits every candidate Trainer (trainer.go) on stratified folds of the
//     training rows: logistic regression (logistic.go), gradient-boosted trees (gbdt.go, the
//     project's own trainer; its file says why), or any tree learner wrapped by TreeTrainer. It
//     learns each trainer's preprocessing (prep.go), gives each trainer a share of the time
//     budget and skips one that fails or runs out of it, chooses the calibration (calibrate.go)
//     on the out-of-fold margins, keeps the trainer with the best out-of-fold Brier score, sets
//     the tiers from the out-of-fold probabilities and assembles the bundle with check vectors
//     and a training record; check vectors and golden rows are real requests, CustomerFeatures
//     in protobuf JSON (features.go);
//   - Evaluate measures probabilities with internal/evaluate (evaluate.go): ROC-AUC, PR-AUC, log
//     loss, Brier score, the calibration table, lift and capture at the top 5/10/20% and the
//     confusion at each tier threshold; the test split's figures go into the bundle.
//
// HostileCorpus (corpus.go) generates the hostile datasets (separable, constant, duplicated,
// collinear and empty columns, 1000 levels, ±1e12, rare churners, CRLF, BOM, quoted commas) that
// a run must either learn from or refuse with an error naming the column, within its budget
// (TestHostileCorpus; make quality at full size).
//
// Preprocessing for the logistic regression follows scikit-learn's defaults so that results are
// comparable with the reference baselines in shared/bench: missing numeric values are imputed with
// the training median, missing categorical values with the training mode; numeric inputs are
// standardised with the training mean and population standard deviation (StandardScaler);
// categorical inputs are one-hot encoded with the training rows' categories in sorted order. Tree
// trainers get the same one-hot columns and unstandardised numeric inputs, with the native
// missing policy for numeric inputs that miss training values. Derived inputs come after the
// columns' inputs and are derived from their values after imputation and transform, before
// standardisation, exactly as internal/features derives them; each is then imputed (training
// median) or native missing, and standardised, like a numeric column. Everything is deterministic: the
// same data, spec and flags (with --seed) give the same bundle byte for byte.
package train
