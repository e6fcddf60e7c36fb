#!/usr/bin/env python3
"""scikit-learn's LogisticRegression on given held-out rows: the figures TestLogisticParity
(internal/train/parity_test.go) compares the logistic family with.

The pipeline is shared/bench/baselines.py's "logreg" (median imputation and StandardScaler for
numeric columns, one-hot for text columns, LogisticRegression(C=1, max_iter=2000)), with two
changes that make it our preprocessing of the generated cases: --log1p columns are log1p'ed
before the imputation (the spec's transform), and an empty text cell takes the most frequent
category of the training rows (SimpleImputer(strategy="most_frequent"), as our spec's default
missing policy does) instead of becoming a category "nan", and so does a held-out category the
training rows do not have (our spec's default unseen policy, "missing") instead of all-zero
one-hot columns (OneHotEncoder's handle_unknown="ignore"). The one case where that matters is
many_levels at 400 rows, where most held-out postcodes are unseen: with handle_unknown="ignore"
scikit-learn's figures there are 0.8491 / 0.1546.

usage: sklearn_lr.py KEY CSV LABEL POSITIVE --test-idx FILE [--drop COL ...] [--log1p COL ...]
       sklearn_lr.py --args DIR   (runs every DIR/*.args that CHURN_PARITY_WRITE=DIR wrote)
Prints one Go map entry per case: "KEY": {roc_auc, brier},
"""
import argparse
import glob
import sys

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def run(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("key")
    ap.add_argument("csv")
    ap.add_argument("label")
    ap.add_argument("positive")
    ap.add_argument("--test-idx", required=True)
    ap.add_argument("--drop", nargs="*", default=[])
    ap.add_argument("--log1p", nargs="*", default=[])
    a = ap.parse_args(argv)
    df = pd.read_csv(a.csv, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    y = (df[a.label].astype(str) == a.positive).astype(int).to_numpy()
    X = df.drop(columns=[a.label] + a.drop)
    for c in a.log1p:
        X[c] = np.log1p(X[c])
    te = np.loadtxt(a.test_idx, dtype=int)
    tr = np.setdiff1d(np.arange(len(df)), te)
    num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    cat = [c for c in X.columns if c not in num]
    for c in cat:
        # The training rows' most frequent category (the first in sorted order on a tie) for an
        # empty cell, and for a held-out category the training rows do not have.
        counts = X[c].iloc[tr].dropna().astype(str).value_counts()
        mode = min(counts[counts == counts.max()].index)
        known = set(counts.index)
        X[c] = [v if isinstance(v, str) and v in known else mode for v in X[c].astype(object).where(X[c].notna(), None)]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", OneHotEncoder(sparse_output=False), cat),
    ])
    m = make_pipeline(prep, LogisticRegression(max_iter=2000))
    m.fit(X.iloc[tr], y[tr])
    p = m.predict_proba(X.iloc[te])[:, 1]
    print('\t"%s": {%.4f, %.4f},' % (a.key, roc_auc_score(y[te], p), brier_score_loss(y[te], p)))
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--args":
        for f in sorted(glob.glob(sys.argv[2] + "/*.args")):
            run(open(f).read().split("\x00"))
    else:
        run(sys.argv[1:])
