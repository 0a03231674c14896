# mp3svc: `make run` serves the whole system locally; `make test` runs every test on real components.
.PHONY: run test setup bench bench-scale lint validate-deploy clean

setup:
	@scripts/setup.sh

# the deploy checks' checkov (.venv-checkov) and openapi-python-client (.venv-openapi) are for the tests only
run:
	@SKIP_CHECKOV=1 SKIP_OPENAPI_CLIENT=1 scripts/setup.sh
	.venv/bin/python -m devtools.run $(if $(CONVERTERS),--converters $(CONVERTERS),)

test: setup
	scripts/setup-browser.sh
	scripts/test.sh $(PYTEST_ARGS)

bench: setup
	scripts/with-broker.sh .venv/bin/python -m bench.run $(BENCH_ARGS)

bench-scale: setup
	scripts/with-broker.sh .venv/bin/python -m bench.run --only scale $(BENCH_ARGS)

lint: setup
	.venv/bin/python -m flake8 services devtools tests bench

validate-deploy: setup
	scripts/validate-deploy.sh

clean:
	rm -rf .venv .venv-mongo .venv-checkov .venv-openapi var
