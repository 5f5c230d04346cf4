#!/bin/sh
# What tuibend needs from the system, checked by looking for the things themselves (a library, a command),
# not by asking one package manager. Installs what is missing where it can (root with apt-get, dnf, pacman or
# zypper; brew as the user), otherwise prints the exact command for the system it is on and fails.
#   tools/system_packages.sh play   PortAudio and a C compiler (the kernel of an editable install)
#   tools/system_packages.sh test   and the JACK server, tmux, clang and an aarch64 cross compiler
set -eu
purpose="${1:-play}"
python="${PYTHON:-python3}"

has_library() { "$python" -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('$1') else 1)"; }
has_command() { command -v "$1" >/dev/null 2>&1; }

if has_command apt-get; then manager=apt
elif has_command dnf; then manager=dnf
elif has_command pacman; then manager=pacman
elif has_command zypper; then manager=zypper
elif has_command brew; then manager=brew
else manager=unknown
fi

# package name of each need, by manager: apt dnf pacman zypper brew
name() {
  case "$1" in
    portaudio) set -- libportaudio2 portaudio portaudio portaudio portaudio ;;
    cc) set -- "gcc libc6-dev" gcc gcc gcc "" ;;
    jackd) set -- jackd2 jack-audio-connection-kit jack2 jack jack ;;
    tmux) set -- tmux tmux tmux tmux tmux ;;
    clang) set -- clang clang clang clang "" ;;
    cross) set -- "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" gcc-aarch64-linux-gnu aarch64-linux-gnu-gcc \
             cross-aarch64-gcc13 "" ;;
  esac
  case "$manager" in apt) echo "$1" ;; dnf) echo "$2" ;; pacman) echo "$3" ;; zypper) echo "$4" ;; *) echo "$5" ;; esac
}

missing=""
# macOS and Windows: the sounddevice wheel carries PortAudio; Linux needs the system's.
[ "$(uname -s)" != Linux ] || has_library portaudio || missing="$missing portaudio"
has_command cc || has_command gcc || has_command clang || missing="$missing cc"
if [ "$purpose" = test ]; then
  has_command jackd || missing="$missing jackd"
  has_command tmux || missing="$missing tmux"
  if [ "$(uname -s)" = Linux ]; then  # the kernel is built with clang and cross-built for ARM in the tests
    has_command clang || missing="$missing clang"
    has_command aarch64-linux-gnu-gcc || missing="$missing cross"
  fi
fi
[ -z "$missing" ] && exit 0

packages=""
for need in $missing; do packages="$packages $(name "$need")"; done
case "$manager" in
  apt) install="apt-get install -y$packages" ;;
  dnf) install="dnf install -y$packages" ;;
  pacman) install="pacman -S --noconfirm$packages" ;;
  zypper) install="zypper install -y$packages" ;;
  brew) install="brew install$packages" ;;
  *) echo "tuibend needs:$missing (no package manager known here: install them by hand)"; exit 1 ;;
esac
if [ "$manager" = brew ]; then
  $install
elif [ "$(id -u)" = 0 ]; then
  [ "$manager" = apt ] && apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $install
else
  echo "tuibend needs:$missing  -> run  sudo $install"
  exit 1
fi
