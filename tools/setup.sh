#!/usr/bin/env bash
# Idempotent set-up: Debian ROS packages, the venv, the workspace links and the catkin build,
# then a check that the ROS command-line tools exist and every node's module imports.
# Each step checks first and does nothing when its result is already in place.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
ws="$root/.ws"

step() { printf '[setup] %s\n' "$*"; }

# One set-up at a time: two catkin_make runs in one workspace corrupt each other.
mkdir -p "$ws"
exec 9>"$ws/.setup.lock"
flock 9

# 1. Debian packages: install only the ones missing.
mapfile -t wanted < <(grep -v '^\s*#' ros-deps.txt | awk 'NF {print $1}')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. The venv, on Debian's interpreter so that rospy and cv_bridge are importable.
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_hash" ]; then
  step "pip install -r requirements.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  echo "$req_hash" > "$venv/.requirements.sha256"
fi

# 3. The workspace: catkin stops at a folder with a package.xml, so link each package in.
mkdir -p "$ws/src"
ln -sfn ../.. "$ws/src/vla_deployment"
for pkg in vla_*/; do
  pkg="${pkg%/}"
  [ -f "$pkg/package.xml" ] && ln -sfn "../../$pkg" "$ws/src/$pkg"
done
for link in "$ws"/src/*; do
  [ -L "$link" ] && [ ! -e "$link" ] && rm -f "$link"
done
[ -e "$ws/src/CMakeLists.txt" ] || ln -sfn /usr/share/catkin/cmake/toplevel.cmake "$ws/src/CMakeLists.txt"

# 4. Build when a build input is newer than the last build.
stamp="$ws/devel/.vla_built"
if [ ! -f "$stamp" ] || [ -n "$(find . -maxdepth 3 \( -path ./.ws -o -path ./.venv -o -path ./.git \) -prune -o \
      -newer "$stamp" \( -name package.xml -o -name CMakeLists.txt -o -name setup.py -o -name '*.msg' -o -name '*.srv' \) \
      -print -quit)" ]; then
  step "catkin_make"
  # shellcheck disable=SC1091
  (cd "$ws" && PATH="$venv/bin:$PATH" catkin_make -DPYTHON_EXECUTABLE="$venv/bin/python" \
      -DCATKIN_ENABLE_TESTING=ON > "$ws/build.log" 2>&1) || { tail -n 40 "$ws/build.log"; exit 1; }
  touch "$stamp"
fi

# 5. What a user runs: the ROS command-line tools, and every node's module imports (a module
#    missing from ros-deps.txt or requirements.txt fails here, by name, not in a node at run time).
(
  set +u  # setup.bash reads variables that may be unset
  # shellcheck disable=SC1091
  source "$root/tools/env.sh"
  for tool in roscore roslaunch rosrun roscd rostopic rosservice rosnode rosparam rosbag rosmsg rostest; do
    type "$tool" >/dev/null 2>&1 || { echo "[setup] the command $tool is missing (see ros-deps.txt)" >&2; exit 1; }
  done
  python "$root/tools/import_nodes.py"
)
step "ready"
