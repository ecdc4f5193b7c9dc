# The two commands of the README:
#   make demo   set up, then start the demo on http://127.0.0.1:$(PORT) (embedded default)
#   make test   set up, then run lint and the whole test suite
# Both install what they need first; a second run reuses the virtual environment.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
# torch, torchvision and sam2 are pinned in requirements.txt; the install order is what matters.
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' requirements.txt)
SAM2_PIN := $(shell grep -E '^sam2==' requirements.txt)
CHROMIUM ?= /usr/bin/chromium

.PHONY: venv test-deps demo test lint pytest chromium migrate serve bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -qq --upgrade pip
	# 1. torch + torchvision first (also brings the setuptools sam2's build needs)
	$(PIP) install -qq $(TORCH_PINS)
	# 2. sam2 is a source package: build it against that torch, without its optional CUDA extension
	SAM2_BUILD_CUDA=0 $(PIP) install -qq --no-build-isolation $(SAM2_PIN)
	# 3. everything else
	$(PIP) install -qq -r requirements.txt
	touch $@

# Test-only packages (crowd-kit as a reference, without its heavy dependencies: see the file).
test-deps: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PIP) install -qq --no-deps -r requirements-test.txt
	touch $@

migrate: venv
	DEBUG=1 $(BIN)/python manage.py migrate --noinput

demo: migrate
	DEBUG=1 $(BIN)/python manage.py demo
	@echo "Demo on http://127.0.0.1:$(PORT)/ (sign in as manager, annotator or outsider; password demo)"
	@# The job worker runs beside daphne and stops with it (Ctrl+C, or daphne failing to start).
	DEBUG=1 $(BIN)/python manage.py db_worker --queue-name '*' --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	DEBUG=1 $(BIN)/python -m platform_core.server -b 127.0.0.1 -p $(PORT) platform_core.asgi:application

# Production-style start: settings come from the environment (see README).
serve: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	$(BIN)/python -m platform_core.server -b $${HOST:-127.0.0.1} -p $(PORT) platform_core.asgi:application

chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (apt-get install chromium) for the browser tests"; exit 1; fi; }

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

pytest: venv test-deps chromium
	$(BIN)/pytest

test: lint pytest

bench: venv
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var
