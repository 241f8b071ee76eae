# Source this file to use the built workspace: ROS environment (with roscd), the venv first on
# PATH, and the sentence model loaded from site-packages with no hub access.
# shellcheck shell=bash
_vla_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_vla_root/.ws/devel/setup.bash"
# roscd, rosls, rosed: Debian's rosbash defines these shell functions in its completion file only.
if [ -f /usr/share/bash-completion/completions/rosbash ]; then
  # shellcheck disable=SC1091
  source /usr/share/bash-completion/completions/rosbash
fi
export PATH="$_vla_root/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export PYTHONDONTWRITEBYTECODE=1
unset _vla_root
