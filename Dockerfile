# syntax=docker/dockerfile:1
# One image for every service of docker-compose.yml (migrate, api, daemon, worker, beat); compose picks the
# command. Nothing secret is baked in: settings come from BOUNTY_* variables at run time and the operator
# key from a compose secret. tests/e2e/test_compose.py keeps this file and the compose file honest.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOUNTY_HOME=/data

# The unprivileged user every process runs as, with /data (BOUNTY_HOME) as its home. The uid is fixed
# because compose mounts the operator key file with its host owner and mode: chown it to this uid, mode 400.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" bounty \
 && useradd --system --uid "${APP_UID}" --gid bounty --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin bounty \
 && install -d -o bounty -g bounty -m 700 /data

WORKDIR /src

# 1. The dependencies (TensorFlow included: about 1 GB), in a layer that only a change to pyproject.toml
#    rebuilds: install the project from empty stand-in packages; step 2 replaces it with the real code.
COPY pyproject.toml ./
RUN mkdir marketplace workers contracts model \
 && touch README.md marketplace/__init__.py workers/__init__.py contracts/__init__.py model/__init__.py \
 && pip install . \
 && rm -rf /src/*

# 2. The project itself (a regular install, not editable: the source tree is not kept).
COPY pyproject.toml README.md ./
COPY marketplace ./marketplace
COPY workers ./workers
COPY contracts ./contracts
COPY model ./model
COPY migrations ./migrations
# migrations/ is packaged too: `bounty db upgrade` finds it beside the installed marketplace package.
RUN pip install --no-deps --force-reinstall . \
 && cd / && python -c 'import marketplace.migrate as m; assert (m.MIGRATIONS / "env.py").is_file(), m.MIGRATIONS' \
 && rm -rf /src

# An empty, root-owned working directory: no stray .env is read from it.
WORKDIR /app
USER bounty
EXPOSE 8000
CMD ["bounty", "serve", "--host", "0.0.0.0", "--port", "8000"]
