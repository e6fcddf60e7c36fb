#!/usr/bin/python3
"""Train and export the foreign models churnctl import is tested against.

Run with the system Python (Debian 12: apt-get install python3-xgboost python3-sklearn, which give
XGBoost 1.7.4, scikit-learn 1.2.1, NumPy 1.24.2), from the repository root:

    /usr/bin/python3 testdata/import/make_models.py ../shared/data/wa_churn.csv ../shared/bench/splits/wa_churn_test_idx.csv

Data: wa_churn.csv (IBM telco churn sample via R modeldata 1.1.0, MIT; see ../shared/data/SOURCES.md),
eight columns coded as numbers. total_charges is missing for 11 new customers; to make the trees'
default directions matter, the script also blanks monthly_charges in 8% and tenure in 5% of the
rows (seeded), standing for customers whose backend does not send those fields. Training rows are
every row outside the standard test split; the rows files hold test-split rows with the library's
own predicted probability (written with repr, so no digit is lost).

Outputs, in testdata/import/:
  xgb_wa.json, xgb_wa_rows.csv            XGBoost gbtree, binary:logistic, base_score 0.3, 60 trees
  xgb_wa_dart.json, xgb_wa_dart_rows.csv  XGBoost dart (weight_drop != 1), 20 trees
  xgb_multiclass.json                     multi:softprob, 3 classes (must be refused)
  xgb_gblinear.json                       gblinear (must be refused)
  xgb_categorical.json                    a categorical split (must be refused)
  xgb_logitraw.json                       binary:logitraw (must be refused)
  sk_wa.json, sk_wa_rows.csv              StandardScaler + LogisticRegression (ovr), total_charges imputed 0
  sk_wa_multinomial.json, sk_wa_multinomial_rows.csv   LogisticRegression(multi_class="multinomial")
"""
import csv
import json
import math
import os
import random
import sys

import numpy as np
import sklearn
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

OUT = os.path.dirname(os.path.abspath(__file__))
FEATURES = ["tenure", "monthly_charges", "total_charges", "senior_citizen", "contract",
            "paperless_billing", "fiber", "tech_support"]
CONTRACT = {"Month-to-month": 0, "One year": 1, "Two year": 2}


def num(s):
    return float(s) if s.strip() != "" else math.nan


def load(data_path, idx_path):
    with open(data_path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(idx_path) as f:
        test = {int(l) for l in f if l.strip()}
    rng = random.Random(7)
    X, y = [], []
    for r in rows:
        x = [num(r["tenure"]), num(r["monthly_charges"]), num(r["total_charges"]),
             num(r["senior_citizen"]), float(CONTRACT[r["contract"]]), num(r["paperless_billing"]),
             1.0 if r["internet_service"] == "Fiber optic" else 0.0,
             1.0 if r["tech_support"] == "Yes" else 0.0]
        if rng.random() < 0.08:
            x[1] = math.nan
        if rng.random() < 0.05:
            x[0] = math.nan
        X.append(x)
        y.append(1 if r["churn"] == "Yes" else 0)
    X, y = np.array(X), np.array(y)
    te = np.array(sorted(test))
    tr = np.array([i for i in range(len(rows)) if i not in test])
    return X[tr], y[tr], X[te], y[te]


def cell(v):
    return "" if math.isnan(v) else repr(float(v))


def write_rows(name, X, p):
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FEATURES + ["probability"])
        for x, q in zip(X, p):
            w.writerow([cell(v) for v in x] + [repr(float(q))])


def save_xgb(booster, name):
    booster.save_model(os.path.join(OUT, name))


def main():
    data_path, idx_path = sys.argv[1], sys.argv[2]
    Xtr, ytr, Xte, yte = load(data_path, idx_path)
    dtr = xgb.DMatrix(Xtr, label=ytr, feature_names=FEATURES, missing=math.nan)
    dte = xgb.DMatrix(Xte, feature_names=FEATURES, missing=math.nan)

    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "base_score": 0.3,
              "tree_method": "hist", "seed": 1, "nthread": 1}
    bst = xgb.train(params, dtr, num_boost_round=60)
    save_xgb(bst, "xgb_wa.json")
    write_rows("xgb_wa_rows.csv", Xte, bst.predict(dte))

    dart = dict(params, booster="dart", rate_drop=0.2, skip_drop=0.0, normalize_type="tree", sample_type="uniform")
    bst = xgb.train(dart, dtr, num_boost_round=20)
    save_xgb(bst, "xgb_wa_dart.json")
    write_rows("xgb_wa_dart_rows.csv", Xte[:300], bst.predict(dte.slice(list(range(300)))))

    # Models the importer must refuse, kept tiny.
    small = xgb.DMatrix(Xtr[:200], label=ytr[:200], feature_names=FEATURES, missing=math.nan)
    mc = xgb.DMatrix(Xtr[:200], label=(Xtr[:200, 4]).astype(int), feature_names=FEATURES, missing=math.nan)
    save_xgb(xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}, mc, 2), "xgb_multiclass.json")
    save_xgb(xgb.train({"objective": "binary:logistic", "booster": "gblinear", "nthread": 1}, small, 2), "xgb_gblinear.json")
    save_xgb(xgb.train({"objective": "binary:logitraw", "max_depth": 2, "nthread": 1}, small, 2), "xgb_logitraw.json")
    cat = xgb.DMatrix(np.nan_to_num(Xtr[:200, 3:5]), label=ytr[:200], feature_names=["senior_citizen", "contract"],
                      feature_types=["q", "c"], enable_categorical=True)
    save_xgb(xgb.train({"objective": "binary:logistic", "max_depth": 2, "tree_method": "hist", "nthread": 1}, cat, 2), "xgb_categorical.json")

    # scikit-learn: total_charges imputed with 0 (the schema says missing: impute, value: 0);
    # rows where tenure or monthly_charges was blanked are left out (the pipeline has no value for them).
    def clean(X):
        keep = ~np.isnan(X[:, 0]) & ~np.isnan(X[:, 1])
        Z = X[keep].copy()
        Z[np.isnan(Z[:, 2]), 2] = 0.0
        return X[keep], Z, keep
    _, Ztr, keep_tr = clean(Xtr)
    Xte_raw, Zte, _ = clean(Xte)
    scaler = StandardScaler().fit(Ztr)
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(Ztr), ytr[keep_tr])
    export_logistic("sk_wa.json", lr, scaler, "ovr")
    write_rows("sk_wa_rows.csv", Xte_raw[:300], lr.predict_proba(scaler.transform(Zte[:300]))[:, 1])

    lrm = LogisticRegression(C=0.5, max_iter=1000, multi_class="multinomial").fit(Ztr, ytr[keep_tr])
    export_logistic("sk_wa_multinomial.json", lrm, None, "multinomial")
    write_rows("sk_wa_multinomial_rows.csv", Xte_raw[:100], lrm.predict_proba(Zte[:100])[:, 1])


def export_logistic(name, lr, scaler, multi_class):
    """Write lr (and the StandardScaler before it) in the JSON internal/importer/sklearn.go documents."""
    doc = {
        "format": "churn.sklearn-logistic.v1",
        "sklearn_version": sklearn.__version__,
        "feature_names": FEATURES,
        "classes": [int(c) for c in lr.classes_],
        "coef": [[float(c) for c in row] for row in lr.coef_],
        "intercept": [float(b) for b in lr.intercept_],
        "multi_class": multi_class,
    }
    if scaler is not None:
        doc["scaler"] = {
            "mean": None if scaler.mean_ is None else [float(v) for v in scaler.mean_],
            "scale": None if scaler.scale_ is None else [float(v) for v in scaler.scale_],
        }
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
