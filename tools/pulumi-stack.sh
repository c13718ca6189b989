#!/bin/sh
# Run one pulumi command against this project's stack: tools/pulumi-stack.sh up [args...]
#
# The Makefile's up/preview/destroy go through here so that they work on a machine that never
# ran `pulumi login`, without changing that machine's global login:
#   - pulumi, kpt and kubectl must be on PATH (the program shells out to kpt and kubectl);
#   - if PULUMI_BACKEND_URL is set, or `pulumi whoami` succeeds (logged in), that backend is
#     used; otherwise state goes to <project>/.pulumi-state through PULUMI_BACKEND_URL for this
#     run only (never `pulumi login`, which would rewrite ~/.pulumi/credentials.json);
#   - the stack ${STACK:-dev} is selected, and created if it does not exist yet;
#   - then `pulumi <args> --stack <stack>` runs.
set -eu

prog=pulumi-stack
say() { printf '%s: %s\n' "$prog" "$*" >&2; }

missing=0
need() {
	if ! command -v "$1" >/dev/null 2>&1; then
		say "$1 is not on PATH; install it from $2"
		missing=1
	fi
}
need pulumi "Pulumi's installer: https://www.pulumi.com/docs/install/"
need kpt "kpt's releases: https://github.com/kptdev/kpt/releases"
need kubectl "https://kubernetes.io/docs/tasks/tools/#kubectl"
if [ "$missing" -ne 0 ]; then
	exit 1
fi

if [ "$#" -eq 0 ]; then
	say "usage: $0 <pulumi command> [arguments...]"
	exit 2
fi

project_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd -P)
stack=${STACK:-dev}
cd "$project_dir"

# whoami logs in as a side effect when it can: --non-interactive and a closed stdin keep it from
# prompting for a token or opening a browser when nobody is logged in.
if [ -n "${PULUMI_BACKEND_URL:-}" ]; then
	# The user chose a backend for this shell; never swap it for an empty local one, even when
	# whoami fails (expired cloud credentials, unreachable bucket): pulumi will say why.
	say "using PULUMI_BACKEND_URL=$PULUMI_BACKEND_URL"
elif whoami_error=$(pulumi whoami --non-interactive 2>&1 >/dev/null </dev/null); then
	say "using the Pulumi backend you are logged in to (see 'pulumi whoami -v')"
else
	state_dir=$project_dir/.pulumi-state
	mkdir -p "$state_dir"
	PULUMI_BACKEND_URL=file://$state_dir
	export PULUMI_BACKEND_URL
	newline='
'
	# whoami's last line is its reason (e.g. no PULUMI_ACCESS_TOKEN); the rest is preamble.
	whoami_reason=${whoami_error##*"$newline"}
	say "not logged in to a Pulumi backend (pulumi whoami: ${whoami_reason:-failed})"
	say "keeping this project's state in $state_dir; run 'pulumi login' first to use another backend"
	if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE+set}" ]; then
		PULUMI_CONFIG_PASSPHRASE=''
		export PULUMI_CONFIG_PASSPHRASE
		say "PULUMI_CONFIG_PASSPHRASE set to empty: this stack's config holds no secrets"
	fi
fi

pulumi stack select --create "$stack"
exec pulumi "$@" --stack "$stack"
