#!/usr/bin/python3
"""Train and export the one-hot models that churnctl import's categorical groups are tested against.

Run with the system Python (Debian 12: apt-get install python3-xgboost python3-sklearn, which give
XGBoost 1.7.4, scikit-learn 1.2.1, NumPy 1.24.2), from the repository root:

    /usr/bin/python3 testdata/import/make_onehot_models.py ../shared/data/wa_churn.csv ../shared/bench/splits/wa_churn_test_idx.csv

Data: wa_churn.csv (IBM telco churn sample via R modeldata 1.1.0, MIT; see ../shared/data/SOURCES.md).
Its text columns are one-hot encoded as pandas.get_dummies does, in three styles, and the model's
columns are interleaved with numeric ones so that the importer must rewire them:

  contract_*       every level a column (Month-to-month, One year, Two year)
  payment_*        every level a column; payment_method is blanked in 6% of the rows (seeded), which
                   get_dummies(dummy_na=False) encodes as every column 0
  internet_*       drop_first: DSL is the level without a column (every column 0)
  tech_support_yes one column; "No" and "No internet service" are both 0

monthly_charges is blanked in 5% of the rows (NaN, the trees' default directions). Training rows are
every row outside the standard test split; the rows files hold test-split rows with the library's
own predicted probability (written with repr, so no digit is lost).

Outputs, in testdata/import/:
  xgb_onehot.json, xgb_onehot_rows.csv  XGBoost gbtree, binary:logistic, 40 trees of depth 3
  sk_onehot.json, sk_onehot_rows.csv    StandardScaler (every column, one-hot ones too) + LogisticRegression;
                                        rows with a blank monthly_charges are left out (the pipeline has none)
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
CONTRACT = ["Month-to-month", "One year", "Two year"]
PAYMENT = ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]
FEATURES = (["contract_month_to_month", "contract_one_year", "contract_two_year", "tenure",
             "payment_electronic_check", "payment_mailed_check", "payment_bank_transfer", "payment_credit_card",
             "monthly_charges", "internet_fiber", "internet_none", "senior_citizen", "tech_support_yes"])


def num(s):
    return float(s) if s.strip() != "" else math.nan


def onehot(value, levels):
    return [1.0 if value == l else 0.0 for l in levels]


def load(data_path, idx_path):
    with open(data_path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(idx_path) as f:
        test = {int(l) for l in f if l.strip()}
    rng = random.Random(11)
    X, y = [], []
    for r in rows:
        payment = r["payment_method"]
        if rng.random() < 0.06:
            payment = ""  # no payment method on file: every payment column 0
        monthly = num(r["monthly_charges"])
        if rng.random() < 0.05:
            monthly = math.nan
        x = (onehot(r["contract"], CONTRACT) + [num(r["tenure"])] + onehot(payment, PAYMENT) + [monthly]
             + onehot(r["internet_service"], ["Fiber optic", "No"]) + [num(r["senior_citizen"])]
             + [1.0 if r["tech_support"] == "Yes" else 0.0])
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


def main():
    data_path, idx_path = sys.argv[1], sys.argv[2]
    Xtr, ytr, Xte, yte = load(data_path, idx_path)
    dtr = xgb.DMatrix(Xtr, label=ytr, feature_names=FEATURES, missing=math.nan)
    dte = xgb.DMatrix(Xte, feature_names=FEATURES, missing=math.nan)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "tree_method": "hist", "seed": 1, "nthread": 1}
    bst = xgb.train(params, dtr, num_boost_round=40)
    bst.save_model(os.path.join(OUT, "xgb_onehot.json"))
    write_rows("xgb_onehot_rows.csv", Xte, bst.predict(dte))

    m = FEATURES.index("monthly_charges")
    keep_tr, keep_te = ~np.isnan(Xtr[:, m]), ~np.isnan(Xte[:, m])
    scaler = StandardScaler().fit(Xtr[keep_tr])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(Xtr[keep_tr]), ytr[keep_tr])
    Xk = Xte[keep_te][:400]
    doc = {
        "format": "churn.sklearn-logistic.v1",
        "sklearn_version": sklearn.__version__,
        "feature_names": FEATURES,
        "classes": [int(c) for c in lr.classes_],
        "coef": [[float(c) for c in row] for row in lr.coef_],
        "intercept": [float(b) for b in lr.intercept_],
        "multi_class": "ovr",
        "scaler": {"mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_]},
    }
    with open(os.path.join(OUT, "sk_onehot.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    write_rows("sk_onehot_rows.csv", Xk, lr.predict_proba(scaler.transform(Xk))[:, 1])


if __name__ == "__main__":
    main()
