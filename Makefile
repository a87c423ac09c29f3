# facecue — two commands for a fresh machine with Python 3.11:
#   make demo   set up .venv and run the main job on the bundled portrait and speech
#   make test   set up .venv with test extras and run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng sox ffmpeg
STAMP := $(VENV)/.facecue-installed

.PHONY: demo test setup system-deps clean help

help:
	@echo "make demo   - install everything into .venv and render the bundled demo"
	@echo "make test   - install everything (with test extras) and run pytest"
	@echo "make clean  - remove .venv and build outputs"

# Debian packages: espeak-ng + sox synthesize test speech, ffmpeg gives ffprobe for checks.
system-deps:
	@missing=""; for c in espeak-ng sox ffmpeg; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: facecue needs Python 3.11 (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# One pip command for everything: installing in steps lets mediapipe's dependencies drift.
$(STAMP): $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e ".[test]"
	@touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(BIN)/facecue demo

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
