"""The ``MiningModel`` protocol: one catalogue entry of the talk's 基于挖掘的模型 table.

Estimators follow scikit-learn: ``__init__`` stores keyword parameters only, ``fit``
returns ``self``, learned state ends in ``_``. Each model also carries
:class:`ModelInfo` metadata (names in Chinese and English, algorithm, mining theme,
application, required inputs, metrics) and knows how to evaluate and explain itself
against a naive baseline, so one runner and one conformance suite serve every entry.

What the runner really requires is abstract here: ``fit``, ``load_demo`` and ``evaluate``;
a class missing one cannot be instantiated. Scoring new rows is optional, a flag plus a
method: ``supports_predict`` and ``predict_table(df)``. It is not called ``score``, because
scikit-learn's ``score(X, y)`` returns one number: a catalogue model that wraps or is
wrapped by sklearn tooling (``clone``, ``cross_val_score``) must not collide with it.
Models register with :func:`register`, built-ins exactly like extensions.
"""

from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from zhinao.analytics.catalog.roles import Binding, Preset, Role


@dataclass(frozen=True)
class ModelInfo:
    key: str  #: registry key, e.g. "churn_logistic"
    name_zh: str
    name_en: str
    algorithm: str  #: e.g. "logistic regression"
    theme: str  #: mining theme: classification | regression | forecasting | clustering | association | sequence | graph | text
    application_zh: str
    application_en: str
    inputs: str  #: human description of required inputs (columns / shape)
    metrics: tuple[str, ...]  #: metric names reported by evaluate()
    dataset: str = ""  #: default demo dataset key
    synthetic: bool = False  #: demo data includes synthetic parts (labelled as such)
    #: classification | regression | forecast | clustering | association | sequence | graph | tagging
    task: str = ""
    #: the columns it needs, bound per run (:mod:`zhinao.analytics.catalog.roles`)
    roles: tuple["Role", ...] = ()
    #: telecom application models over this estimator (parameter sets), the default first
    presets: tuple["Preset", ...] = ()


@dataclass
class Evaluation:
    """What a run reports: metrics of the model and of its baseline, and explanations."""

    metrics: dict[str, float]
    baseline: dict[str, float]
    baseline_name: str
    explanation: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, bytes] = field(default_factory=dict)  #: name -> PNG bytes
    #: name -> interactive chart data for the console (:mod:`zhinao.analytics.catalog.plots`)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)


class MiningModel(abc.ABC):
    """Base of every catalogue model (scikit-learn estimator conventions).

    Required: :meth:`fit`, :meth:`load_demo`, :meth:`evaluate`. Optional: :meth:`predict_table`
    (set :attr:`supports_predict`) and :meth:`from_frame`. The full contract, and the suite
    that checks it over every registered model, are in ``zhinao.analytics.catalog`` and
    ``tests/conformance/test_mining_models.py``.
    """

    info: ClassVar[ModelInfo]
    #: whether :meth:`predict_table` scores new rows (the runner writes them to a table)
    supports_predict: ClassVar[bool] = False

    @abc.abstractmethod
    def fit(self, X: Any, y: Any = None) -> "MiningModel":
        """Learn from data; returns ``self``; learned attributes end in ``_``.

        ``fit(data)`` accepts the output of :meth:`load_demo` / :meth:`from_frame` directly
        (``y=None``: the target, if any, is taken from ``data``) and fits on all of it.
        """

    @abc.abstractmethod
    def load_demo(self) -> Any:
        """The model's default demo data (read from :mod:`zhinao.analytics.datasets`, no downloads),
        in the shape :meth:`evaluate` takes."""

    @abc.abstractmethod
    def evaluate(self, data: Any) -> "Evaluation":
        """Split ``data`` into train and a proper hold-out, fit on the train part, and report
        metrics, the naive baseline's metrics on the same hold-out, an explanation and charts.

        After ``evaluate`` the instance is fitted on the training part; the runner persists it.
        """

    def predict_table(self, df: Any) -> Any:
        """Score new rows (a ``pandas.DataFrame``) with the fitted model; returns a DataFrame of
        identifier columns plus predictions. Optional: only where :attr:`supports_predict`."""
        raise NotImplementedError(f"{type(self).__name__} does not score new rows")

    def from_frame(self, df: Any) -> Any:
        """Turn a workspace table (``pandas.DataFrame``) into :meth:`evaluate`'s input; default: as is."""
        return df

    def bind(self, df: Any) -> "Binding":
        """Bind ``info.roles`` to ``df``'s columns (given parameters first, the rest inferred),
        keep the result in ``binding_`` (the run record shows it) and return it."""
        from zhinao.analytics.catalog.roles import bind, role_params

        self.binding_ = bind(self.info.roles, df, role_params(self), model_key=self.info.key)
        return self.binding_

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> "MiningModel":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


_REGISTRY: dict[str, type[MiningModel]] = {}


def register(cls: type[MiningModel]) -> type[MiningModel]:
    """Class decorator: add a model to the catalogue under ``cls.info.key``."""
    _REGISTRY[cls.info.key] = cls
    return cls


def catalogue() -> dict[str, type[MiningModel]]:
    """All registered models (importing :mod:`zhinao.analytics.catalog` registers the built-ins)."""
    return dict(_REGISTRY)
