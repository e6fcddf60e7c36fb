// Package train fits churn models on CSV data and evaluates them: its one job is to turn a
// dataset (a CSV file plus a dataset spec that maps its columns to CustomerFeatures sources) into
// a model bundle whose check vectors the serving code reproduces, and to measure the model on
// held-out rows.
//
// The pieces, in the order churnctl train uses them:
//
//   - ParseSpec reads a dataset spec (spec.go);
//   - ReadCSV reads the CSV under that spec (data.go);
//   - ReadIndices or StratifiedSplit choose the held-out rows (split.go);
//   - Run learns the preprocessing (prep.go), fits a logistic regression (logistic.go) and
//     assembles the bundle, with tiers, check vectors and a training record (run.go); check
//     vectors and golden rows are real requests, CustomerFeatures in protobuf JSON (features.go);
//   - Evaluate computes ROC-AUC, PR-AUC, log loss, Brier score and a calibration table
//     (evaluate.go).
//
// Preprocessing follows scikit-learn's defaults so that results are comparable with the
// reference baselines in shared/bench: missing numeric values are imputed with the training
// median, missing categorical values with the training mode; numeric inputs are standardised
// with the training mean and population standard deviation (StandardScaler); categorical inputs
// are one-hot encoded with the training rows' categories in sorted order. Everything is
// deterministic: the same data, spec and flags give the same bundle byte for byte.
package train
