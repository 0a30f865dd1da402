"""The baseline: the seeds' ElasticNet script with the same MLflow logging mlrig does.

Usage: python plain_mlflow.py STORE_DIR [--no-mlflow]
"""

from __future__ import annotations

import sys
from importlib import metadata as md
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

CSV = Path(__file__).resolve().parent.parent / "src/mlrig/data/datasets/winequality-red.csv"


def main() -> None:
    store = Path(sys.argv[1]).resolve()
    data = pd.read_csv(CSV, sep=";").astype("float64")
    train, test = train_test_split(data, test_size=0.25, random_state=42)
    x_train, x_test = train.drop(columns=["quality"]), test.drop(columns=["quality"])
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42).fit(x_train, train["quality"])
    pred = model.predict(x_test)
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(test["quality"], pred))),
        "mae": float(mean_absolute_error(test["quality"], pred)),
        "r2": float(r2_score(test["quality"], pred)),
    }
    if "--no-mlflow" in sys.argv:
        print(metrics)
        return
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    name = "plain"
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=(store / "artifacts").as_uri())
    mlflow.set_experiment(name)
    reqs = [
        f"{p}=={md.version(p)}"
        for p in ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
    ]
    with mlflow.start_run() as run:
        mlflow.log_params({"alpha": 0.5, "l1_ratio": 0.5})
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_train, model.predict(x_train.head(5))),
            input_example=x_train.head(5),
            pip_requirements=reqs,
        )
    mv = mlflow.register_model(info.model_uri, "plain-wine")
    mlflow.MlflowClient().set_registered_model_alias("plain-wine", "champion", mv.version)
    print(run.info.run_id, metrics)


if __name__ == "__main__":
    main()
