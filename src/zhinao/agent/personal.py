"""Personal-data marks and masking, as the agent uses them: :mod:`zhinao.analytics.personal`.

The marks are dataset metadata, set at import by the analytics capability, so the code lives
there (a capability cannot import the agent above it); this name keeps the agent's own
imports short.
"""

from zhinao.analytics.personal import *  # noqa: F401,F403
from zhinao.analytics.personal import __all__  # noqa: F401
