"""The frozen evaluation set: the held-out rows every candidate and the champion are scored on.

The first run of a registered model stores its held-out rows as a Parquet artifact and names
that run in a registered-model tag; later runs (``mlrig run`` and ``mlrig tune``) load the
same rows, so a challenger and the champion are always compared on identical data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

from mlrig.tracking.tags import EVAL_SET_DIGEST, EVAL_SET_LABELLING, EVAL_SET_RUN_ID

EVAL_SET_ARTIFACT = "evaluation/eval_set.parquet"


@dataclass(frozen=True)
class StoredEvalSet:
    frame: pd.DataFrame
    run_id: str
    digest: str
    labelling: str | None = None  # tags.encode_labelling; None: stored before it was recorded


def to_parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def load_eval_set(client: MlflowClient, model_name: str) -> StoredEvalSet | None:
    """The stored evaluation set of ``model_name``, or None before its first registration."""
    import tempfile

    import pandas as pd
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model_name).tags or {}
    except MlflowException:
        return None
    run_id = tags.get(EVAL_SET_RUN_ID)
    if not run_id:
        return None
    # The run that stored the set tagged its digest and labelling when it was created (one
    # write); the model's tags are three writes a crash can split, so the run's win.
    own = client.get_run(run_id).data.tags
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_parquet(client.download_artifacts(run_id, EVAL_SET_ARTIFACT, tmp))
    return StoredEvalSet(
        frame,
        run_id,
        own.get(EVAL_SET_DIGEST) or tags.get(EVAL_SET_DIGEST, ""),
        own.get(EVAL_SET_LABELLING) or tags.get(EVAL_SET_LABELLING),
    )


def remember_eval_set(
    client: MlflowClient, model_name: str, run_id: str, digest: str, labelling: str | None = None
) -> None:
    """Make the set logged by ``run_id`` the one later runs of ``model_name`` are scored on;
    ``labelling`` says how its target was labelled, so a run labelling otherwise redraws it.
    The run id goes last; readers take the digest and labelling from the run's own tags."""
    client.set_registered_model_tag(model_name, EVAL_SET_DIGEST, digest)
    if labelling is not None:
        client.set_registered_model_tag(model_name, EVAL_SET_LABELLING, labelling)
    client.set_registered_model_tag(model_name, EVAL_SET_RUN_ID, run_id)
