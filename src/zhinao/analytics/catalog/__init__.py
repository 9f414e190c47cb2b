"""The catalogue of mining models (the talk's 基于挖掘的模型 table), one module per family.

Importing this package registers every built-in model (``base.catalogue()`` lists them).

THE CONTRACT every catalogue model follows (the runner, the API, the CLI and the
conformance suite in ``tests/conformance/test_mining_models.py`` rely on exactly this).
``fit``, ``load_demo`` and ``evaluate`` are abstract in ``MiningModel`` (required);
``predict_table`` with the ``supports_predict`` flag, and ``from_frame``, are optional:

1. Class ``class XModel(MiningModel)`` decorated with ``@register``, with a
   ``info: ClassVar[ModelInfo]`` (``base.py``). ``info.metrics[0]`` is the *primary*
   metric the run is judged by (``protocol.LOWER_IS_BETTER`` lists the names where smaller
   wins, e.g. ``mae``/``rmse``/``mape``); every name in ``info.metrics`` appears in
   ``Evaluation.metrics``. ``info.dataset`` is a key of ``datasets.DATASETS``.
2. scikit-learn conventions: ``__init__`` takes keyword parameters with defaults only and
   stores them unchanged (``get_params()`` round-trips); ``fit(X, y=None)`` returns
   ``self``; learned state lives in attributes ending in ``_`` (none before ``fit``).
   ``fit(data)`` must accept the output of ``load_demo()`` / ``from_frame()`` directly
   (``y=None``: the target, if any, is taken from ``data``) and fit on all of it; the
   conformance suite calls exactly that. The fitted instance must pickle (joblib).
3. ``load_demo() -> data``: the default demo data, read from :mod:`..datasets` (no
   downloads). Subsample where needed so ``evaluate(load_demo())`` takes < ~20 s on 2
   cores, and say so in ``Evaluation.explanation["notes"]``.
4. ``evaluate(data) -> Evaluation``: proper hold-out (time-based for forecasts; the
   dataset's own split where it has one; stratified random with a fixed seed otherwise),
   fit on the train part, metrics on the hold-out, and the same metrics for a *naive
   baseline* on the same hold-out (``baseline`` dict + ``baseline_name``; leave
   ``baseline`` empty only where no baseline applies). ``explanation`` is JSON-serialisable
   (coefficients, importances, rules, top words, clusters ...; put caveats and framing in
   ``explanation["notes"]`` (list of str) and the split in ``explanation["split"]``).
   ``charts`` maps a file-safe name to PNG bytes — draw with :mod:`.charts` (Agg backend,
   CJK font). After ``evaluate`` the instance is fitted on the training part.
5. Optional ``predict_table(df) -> DataFrame``, with ``supports_predict = True`` on the
   class: score new rows (same columns as the demo table, minus the target); return
   identifier columns plus predictions/scores, ranked where that makes sense (e.g. churn
   risk, highest first). ``MiningModel.predict_table`` raises ``NotImplementedError``;
   ``protocol.supports_predict(cls)`` tells the runner. Never define ``score``: in
   scikit-learn ``score(X, y)`` returns one number, and tools that call it would break.
6. Optional ``from_frame(df) -> data``: turn a workspace table (DuckDB -> pandas) into
   ``evaluate``'s input; the default returns the frame unchanged.
7. Bad input raises :class:`zhinao.errors.InvalidRequest` naming the column or limit: use
   ``protocol.require_columns`` / ``require_rows`` / ``require_target`` /
   ``usable_features`` / ``to_datetime`` / ``to_numeric``. Never let a raw pandas or
   sklearn exception escape for user-caused problems.
8. Synthetic parts of demo data (only where no public data exists) are generated in code
   with a fixed seed, ``info.synthetic=True``, and labelled in the explanation notes.
"""

from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, catalogue, register
from zhinao.analytics.catalog.protocol import supports_predict

# Built-in families (each registers its models on import).
from zhinao.analytics.catalog import association  # noqa: E402,F401
from zhinao.analytics.catalog import classification  # noqa: E402,F401
from zhinao.analytics.catalog import clustering  # noqa: E402,F401
from zhinao.analytics.catalog import forecasting  # noqa: E402,F401
from zhinao.analytics.catalog import graph  # noqa: E402,F401
from zhinao.analytics.catalog import sequence  # noqa: E402,F401
from zhinao.analytics.catalog import tabular_transformer  # noqa: E402,F401
from zhinao.analytics.catalog import tabular_nb_knn  # noqa: E402,F401
from zhinao.analytics.catalog import text  # noqa: E402,F401

__all__ = ["Evaluation", "MiningModel", "ModelInfo", "catalogue", "register", "supports_predict"]
