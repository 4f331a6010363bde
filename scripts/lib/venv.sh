# shellcheck shell=bash
# Shared by scripts/demo, scripts/test and scripts/bench: make .venv and install tierctl into it.
# Re-installs only when pyproject.toml (or the extras asked for) changed since the last install.

tierctl_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

find_python() {
    local py
    for py in "${TIERCTL_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

apt_install() {
    # Debian packages, installed only when missing; `apt-get update` only when an install needs it.
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "tierctl: need Debian packages ${missing[*]}: run as root or install them" >&2
        return 1
    fi
    echo "tierctl: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    }
}

ensure_venv() {
    # usage: ensure_venv [EXTRAS]   e.g. ensure_venv dev
    local extras="${1:-}" root py spec stamp want
    root="$(tierctl_root)"
    if ! py="$(find_python)"; then
        apt_install python3 python3-venv || return 1
        py="$(find_python)" || { echo "tierctl: no Python >= 3.11 found" >&2; return 1; }
    fi
    if [ ! -x "$root/.venv/bin/python" ]; then
        "$py" -m venv "$root/.venv" 2>/dev/null || {
            apt_install python3-venv && rm -rf "$root/.venv" && "$py" -m venv "$root/.venv"
        } || { echo "tierctl: cannot create $root/.venv with $py" >&2; return 1; }
    fi
    spec="$root"
    [ -n "$extras" ] && spec="${root}[${extras}]"
    stamp="$root/.venv/.tierctl-installed"
    want="$(sha256sum <"$root/pyproject.toml" | cut -d" " -f1) $extras"
    if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
        echo "tierctl: installing into .venv (${extras:-runtime}); log in .venv/install.log" >&2
        {
            "$root/.venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
                "$root/.venv/bin/python" -m pip install --disable-pip-version-check -e "$spec"
        } >"$root/.venv/install.log" 2>&1 || {
            tail -n 30 "$root/.venv/install.log" >&2
            echo "tierctl: pip install of $spec failed (full log: .venv/install.log)" >&2
            return 1
        }
        echo "$want" >>"$stamp"
    fi
    export PATH="$root/.venv/bin:$PATH"
    export VIRTUAL_ENV="$root/.venv"
}
