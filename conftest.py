"""Root conftest: the harness's pytest plugin (options --device, --backend, --dtypes, --profile, --report)."""

pytest_plugins = ["operators.pytest_plugin"]
