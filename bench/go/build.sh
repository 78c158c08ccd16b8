#!/usr/bin/env bash
# bench/go/build.sh OUTPUT: builds the Go baseline offline from Debian's packages (golang-go,
# golang-golang-x-oauth2-dev): no module proxy, no toolchain download, the GOPATH Debian installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS=
export GOCACHE="${GOCACHE:-$(cd "$(dirname "$1")" && pwd)/go-cache}"
go build -o "$1" "$here/main.go"
