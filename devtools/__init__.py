"""Development tools: the local launcher (`make run`, tests, bench) and the dev mail sink.

Run from the repository root (`python -m devtools.run`); not installed with the services.
"""
import warnings

# eventlet prints an eight-line deprecation banner when first imported (here: through nameko, by the
# launcher's imports of the services' settings); the services themselves get QUIET_WARNINGS.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
