"""`mlrig predict`: a file (path or URL) scored in chunks by the registered champion, as a
real CLI process on a real trained home; and `mlrig.predict(frame)` in-process."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import (
    predictor_of,
    run_cli,
    stored_predictions,
    wine_frame,
    write_taxi_config,
    write_taxi_parquet,
)

pytestmark = pytest.mark.slow  # each CLI run loads MLflow and the model (≈5-10 s)

N = 700  # rows per input file: several chunks at --chunk-rows 100


@pytest.fixture(scope="module")
def wines() -> pd.DataFrame:
    """Red wines without the target, with a text id column the model does not know."""
    frame = wine_frame().drop(columns="quality").head(N).reset_index(drop=True)
    frame.insert(0, "wine_id", [f"w{i:04d}" for i in range(N)])
    return frame


def _served(home: Path, frame: pd.DataFrame) -> np.ndarray:
    """What the served model (the server's own Predictor) answers for these rows."""
    predictor = predictor_of(home)
    return predictor.predict(frame[list(predictor.features)].to_numpy(dtype=np.float64))[0]  # type: ignore[no-any-return]


def _logged(home: Path) -> pd.DataFrame:
    if not (home / "predictions.db").exists():
        return pd.DataFrame()
    return stored_predictions(home)  # type: ignore[no-any-return]


def test_semicolon_csv_scores_like_the_server_in_any_number_of_chunks_and_logs_nothing(
    trained_home: Path, tmp_path: Path, wines: pd.DataFrame
) -> None:
    source = tmp_path / "wines.csv"
    wines.to_csv(source, sep=";", index=False)
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    for out, rows in ((one, "100000"), (many, "100")):
        done = run_cli(
            "predict",
            str(source),
            "-o",
            str(out),
            "--chunk-rows",
            rows,
            "--home",
            str(trained_home),
        )
        assert done.returncode == 0, done.stderr
        assert f"{N:,} rows scored by wine-quality v1" in done.stderr
    scored = pd.read_csv(one)
    assert list(scored.columns) == ["wine_id", "prediction"]
    assert scored["wine_id"].tolist() == wines["wine_id"].tolist()
    np.testing.assert_allclose(scored["prediction"], _served(trained_home, wines), rtol=1e-12)
    assert many.read_bytes() == one.read_bytes()
    assert len(_logged(trained_home)) == 0  # --no-log is the default


def test_parquet_in_parquet_out_with_the_log_holding_every_row_under_its_client_id(
    trained_home: Path, tmp_path: Path, wines: pd.DataFrame
) -> None:
    source, out = tmp_path / "wines.parquet", tmp_path / "scored.parquet"
    wines.to_parquet(source, index=False)
    args = ("predict", str(source), "-o", str(out), "--log", "--chunk-rows", "300")
    done = run_cli(*args, "--home", str(trained_home))
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(out)
    assert scored["wine_id"].tolist() == wines["wine_id"].tolist()
    np.testing.assert_allclose(scored["prediction"], _served(trained_home, wines), rtol=1e-12)
    log = _logged(trained_home)
    assert len(log) == N and set(log["endpoint"]) == {"batch"}
    assert set(log["model_version"]) == {"1"} and log["batch_id"].nunique() == 3  # 3 chunks
    by_id = log.set_index("id").loc[wines["wine_id"]]
    np.testing.assert_allclose(by_id["prediction"], scored["prediction"], rtol=1e-12)
    np.testing.assert_allclose(by_id["alcohol"], wines["alcohol"])


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a folder."""
    folder = tmp_path / "www"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_url_without_ids_is_scored_and_logged_under_ids_the_output_gives(
    trained_home: Path, tmp_path: Path, wines: pd.DataFrame, http_dir: tuple[Path, str]
) -> None:
    from mlrig.predictions.store import PredictionStore

    folder, url = http_dir
    wines.drop(columns="wine_id").to_csv(folder / "wines.csv", index=False)
    out = tmp_path / "scored.csv"
    done = run_cli(
        "predict", f"{url}/wines.csv", "-o", str(out), "--log", "--home", str(trained_home)
    )
    assert done.returncode == 0, done.stderr
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["id", "prediction"] and scored["id"].is_unique
    store = PredictionStore(f"sqlite:///{trained_home / 'predictions.db'}")
    try:  # feedback can name every row by the id the output gave it
        assert store.missing_ids("wine-quality", scored["id"].tolist()) == []
    finally:
        store.close()
    missing = run_cli("predict", f"{url}/nope.csv", "--home", str(trained_home))
    assert missing.returncode == 3 and "nope.csv: HTTP 404" in missing.stderr


def test_a_bad_row_in_a_later_chunk_is_named_by_its_line_and_its_chunk_is_not_logged(
    trained_home: Path, tmp_path: Path, wines: pd.DataFrame
) -> None:
    text = wines.to_csv(index=False).splitlines()
    text.insert(3, "")  # a blank line: the editor's line numbers count it
    row = text[452].split(",")  # line 453: data row 450, in the 5th chunk of 100
    text[452] = ",".join(["n/a" if c == "pH" else v for c, v in zip(wines, row, strict=True)])
    source, out = tmp_path / "bad.csv", tmp_path / "scored.csv"
    source.write_text("\n".join(text) + "\n")
    done = run_cli(
        "predict", str(source), "-o", str(out), "--log", "--chunk-rows", "100",
        "--home", str(trained_home),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "bad.csv: line 453, column 'pH': 'n/a' is not a number" in done.stderr
    assert not out.exists()  # OUTPUT is written whole or not at all
    # The reader fails the whole block (≈ one chunk) holding a value it cannot convert: the
    # rows logged are a prefix of the file ending before the bad row, and the message says so.
    before = len(_logged(trained_home))
    assert before < 450
    if before:
        assert f"({before:,} earlier rows were logged)" in done.stderr
        assert set(_logged(trained_home)["id"]) == set(wines["wine_id"][:before])
    # A value the reader reads but the server refuses stops at its chunk exactly.
    text[452] = ",".join([*row[:-2], "1e300", row[-1]])
    source.write_text("\n".join(text) + "\n")
    done = run_cli(
        "predict", str(source), "-o", str(out), "--log", "--chunk-rows", "100",
        "--home", str(trained_home),
    )  # fmt: skip
    assert done.returncode == 3
    assert "line 453, column 'sulphates': must be between -1e+100 and 1e+100" in done.stderr
    assert "(400 earlier rows were logged)" in done.stderr and not out.exists()
    assert len(_logged(trained_home)) == before + 400


def test_python_api_scores_a_frame_and_names_a_bad_row(
    trained_home: Path, wines: pd.DataFrame
) -> None:
    import mlrig
    from mlrig.errors import DataValidationError

    frame = wines.set_index(pd.RangeIndex(100, 100 + N))
    scored = mlrig.predict(frame, home=trained_home)
    assert list(scored.columns) == ["wine_id", "prediction"]
    assert scored.index.equals(frame.index)
    np.testing.assert_allclose(scored["prediction"], _served(trained_home, wines), rtol=1e-12)
    again = mlrig.predict(frame.head(3), "wine-quality/1", home=trained_home)
    np.testing.assert_allclose(again["prediction"], scored["prediction"][:3])
    broken = frame.copy()
    broken.loc[105, "alcohol"] = np.inf
    with pytest.raises(DataValidationError, match="row 105, column 'alcohol': must be a finite"):
        mlrig.predict(broken, home=trained_home)
    with pytest.raises(DataValidationError, match=r"missing feature column\(s\) 'pH'"):
        mlrig.predict(frame.drop(columns="pH"), home=trained_home)
    assert len(_logged(trained_home)) == 0


def test_a_classifier_file_gets_its_probability_column(tmp_path: Path) -> None:
    home = tmp_path / ".mlrig"
    (tmp_path / "mlrig.toml").write_text("[data]\npositive_threshold = 7\n")
    done = run_cli("run", "--home", str(home), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    frame = wine_frame().drop(columns="quality").head(200)
    frame.to_csv(tmp_path / "in.csv", index=False)
    done = run_cli(
        "predict", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"),
        "--home", str(home), "-c", str(tmp_path / "mlrig.toml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert list(scored.columns) == ["prediction", "probability"]
    assert set(scored["prediction"]) <= {0, 1}
    assert (scored["prediction"] == (scored["probability"] > 0.5)).all()
    predictor = predictor_of(home)
    proba = predictor.predict(frame[list(predictor.features)].to_numpy(dtype=np.float64))[1]
    np.testing.assert_allclose(scored["probability"], proba[:, 1], rtol=1e-12)


def test_categorical_zones_score_the_same_from_parquet_integers_and_csv_text(
    tmp_path: Path,
) -> None:
    home = tmp_path / ".mlrig"
    data = write_taxi_parquet(tmp_path / "green_tripdata_2021-01.parquet", n=300)
    config = write_taxi_config(tmp_path / "taxi.toml", data)
    done = run_cli("run", "--home", str(home), "--config", str(config), "--quiet")
    assert done.returncode == 0, done.stderr
    # the training file as it is: integer zones, timestamps and the target copied with --keep
    keep = ("lpep_pickup_datetime", "lpep_dropoff_datetime", "duration")
    out = tmp_path / "scored.parquet"
    args = [a for k in keep for a in ("--keep", k)]
    done = run_cli(
        "predict", str(data), "-o", str(out), *args, "-c", str(config), "--home", str(home)
    )
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(out)
    rides = pd.read_parquet(data)
    assert list(scored.columns) == [*keep, "prediction"]
    assert scored["lpep_pickup_datetime"].equals(rides["lpep_pickup_datetime"])
    predictor = predictor_of(home, "taxi-duration@champion")
    x = np.empty((len(rides), 3), dtype=object)
    x[:, 0] = rides["PULocationID"].astype(str)
    x[:, 1] = rides["DOLocationID"].astype(str)
    x[:, 2] = rides["trip_distance"].astype(float)
    np.testing.assert_allclose(scored["prediction"], predictor.predict(x)[0], rtol=1e-12)
    # the zoomcamp's ride_id next to the features, zones as CSV text
    csv = rides[["PULocationID", "DOLocationID", "trip_distance"]].copy()
    csv.insert(0, "ride_id", [f"2021/01/{i}" for i in range(len(csv))])
    csv.to_csv(tmp_path / "rides.csv", index=False)
    done = run_cli(
        "predict", str(tmp_path / "rides.csv"), "-m", "taxi-duration@champion", "--home", str(home)
    )
    assert done.returncode == 0, done.stderr
    from_csv = pd.read_csv(io.StringIO(done.stdout))
    assert from_csv["ride_id"].tolist() == csv["ride_id"].tolist()
    np.testing.assert_allclose(from_csv["prediction"], scored["prediction"], rtol=1e-12)
