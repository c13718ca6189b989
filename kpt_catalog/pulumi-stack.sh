#!/bin/sh
# Run one pulumi command against this project's stack: kpt_catalog/pulumi-stack.sh up [args...]
#
# The Makefile's up/preview/destroy go through here so that they work on a machine that never
# ran `pulumi login`, without changing that machine's global login:
#   - pulumi, kpt and kubectl must be on PATH (the program shells out to kpt and kubectl);
#   - if PULUMI_BACKEND_URL is set, or `pulumi whoami` succeeds (logged in), that backend is
#     used; otherwise state goes to <project>/.pulumi-state through PULUMI_BACKEND_URL for this
#     run only (never `pulumi login`, which would rewrite ~/.pulumi/credentials.json);
#     On that local backend, when neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE
#     is set, the passphrase is set to empty only after kpt_catalog/stackstate.py found no secret in
#     Pulumi.<stack>.yaml nor in the stack's state; otherwise it stops and says how to set one;
#   - the stack ${STACK:-dev} is selected, and created if it does not exist yet;
#   - then `pulumi <args> --stack <stack>` runs.
#
# `kpt_catalog/pulumi-stack.sh destroy-all [args...]` removes everything, protected resources too, and
# cannot half-happen: it unprotects exactly the resources that are protected, runs
# `pulumi destroy [args...]`, and whatever the outcome (declined, failed, Ctrl-C) protects again
# every one of them still in state before it returns, with the destroy's exit status.
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
	exit 78 # sysexits EX_CONFIG: kpt-catalog reads it as a configuration error
fi

if [ "$#" -eq 0 ]; then
	say "usage: $0 <pulumi command> [arguments...]"
	exit 2
fi

project_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd -P)
stack=${STACK:-dev}
cd "$project_dir"

# kpt_catalog/stackstate.py is standard library only: the project's venv runs it, else python3.
if [ -x venv/bin/python ]; then
	python=venv/bin/python
else
	python=python3
fi
stackstate() { "$python" kpt_catalog/stackstate.py "$@"; }

# How to give the stack a passphrase; stops the run.
refuse_empty_passphrase() {
	say "set it for this shell, then run this again:"
	say "  export PULUMI_CONFIG_PASSPHRASE_FILE=<a file only you can read, holding the passphrase>"
	say "  (or: read -rs PULUMI_CONFIG_PASSPHRASE && export PULUMI_CONFIG_PASSPHRASE)"
	say "if this stack was created with the empty passphrase, give it a real one (it asks for the new one):"
	say "  PULUMI_CONFIG_PASSPHRASE= PULUMI_BACKEND_URL=$PULUMI_BACKEND_URL pulumi stack change-secrets-provider passphrase --stack $stack"
	exit 78
}

# `--secret` as pulumi's flag parser (cobra/pflag) takes it: bare, or =true in any of the
# spellings strconv.ParseBool accepts.
stores_secret() {
	case $1 in
	--secret | --secret=1 | --secret=t | --secret=T | --secret=true | --secret=TRUE | --secret=True) return 0 ;;
	*) return 1 ;;
	esac
}

# Whether the passphrase pulumi would use is empty: PULUMI_CONFIG_PASSPHRASE when set (even to
# nothing), else the contents of a named PULUMI_CONFIG_PASSPHRASE_FILE, blanks trimmed, else none
# is set at all (pulumi v3.276 pkg/secrets/passphrase/manager.go, readPassphrase).
passphrase_empty() {
	if [ -n "${PULUMI_CONFIG_PASSPHRASE+set}" ]; then
		[ -z "$PULUMI_CONFIG_PASSPHRASE" ]
		return
	fi
	if [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
		# /dev/null, an empty file, or one holding only blanks: no passphrase.
		[ -r "$PULUMI_CONFIG_PASSPHRASE_FILE" ] || return 1
		[ -z "$(tr -d '[:space:]' <"$PULUMI_CONFIG_PASSPHRASE_FILE")" ]
		return
	fi
	return 0
}

# An empty passphrase only for a stack that holds no secret: Pulumi.<stack>.yaml has no `secure:`
# value and the state file has no encrypted value. The passphrase itself is never printed.
choose_passphrase() {
	if found=$(stackstate secrets --stack "$stack" --state-dir "$state_dir"); then
		verdict=0
	else
		verdict=$?
	fi
	# `pulumi config set --secret` is about to store one: with the empty passphrase it would be
	# encrypted with nothing, so it is refused like a stack that already holds one.
	if [ "$verdict" -eq 0 ]; then
		for arg in "$@"; do
			if stores_secret "$arg"; then
				say "this command stores a secret (--secret), so the stack needs a real passphrase"
				refuse_empty_passphrase
			fi
		done
		if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
			PULUMI_CONFIG_PASSPHRASE=''
			export PULUMI_CONFIG_PASSPHRASE
			say "PULUMI_CONFIG_PASSPHRASE set to empty: checked Pulumi.$stack.yaml and its state, this stack holds no secrets"
		else
			say "the passphrase set is empty: checked Pulumi.$stack.yaml and its state, this stack holds no secrets"
		fi
		return 0
	fi
	case $verdict in
	3)
		say "Pulumi.$stack.yaml names the secrets provider $found: it, not a passphrase, protects this stack's secrets"
		return 0
		;;
	1)
		say "stack $stack holds secrets, so it needs its passphrase:"
		printf '%s\n' "$found" | while IFS= read -r where; do say "  $where"; done
		;;
	*)
		say "cannot tell whether stack $stack holds secrets, so it will not use an empty passphrase:"
		say "  $found"
		;;
	esac
	refuse_empty_passphrase
}

# destroy-all: protected resources are unprotected only for the length of one `pulumi destroy`.
# `pulumi stack export` prints the stored deployment without decrypting anything
# (pulumi/pulumi pkg/cmd/pulumi/stack/stack_export.go); kpt_catalog/stackstate.py reads it.
# `pulumi state protect` and `unprotect` are called once per URN: older CLIs take one URN each
# (pulumi/pulumi pkg/cmd/pulumi/state/state_protect.go: MaximumNArgs(1)).
interrupted=0
unprotected=''
newline='
'
reprotect() {
	[ -n "$unprotected" ] || return 0
	# Only those still in state: the destroy may have removed some (or all) of them.
	# shellcheck disable=SC2086 # one URN a word: IFS is a newline and globbing is off
	if export_json=$(pulumi stack export --stack "$stack" </dev/null) &&
		still=$(printf '%s' "$export_json" | stackstate present $unprotected); then
		:
	else
		still=$unprotected
	fi
	left=''
	for urn in $still; do
		if pulumi state protect --yes --stack "$stack" "$urn" </dev/null; then
			say "protected again: $urn"
		else
			left="$left$urn$newline"
		fi
	done
	unprotected=''
	if [ -n "$left" ]; then
		say "could NOT protect these again; run, for each:"
		for urn in $left; do say "  pulumi state protect --yes --stack $stack '$urn'"; done
		return 1
	fi
}

destroy_all() {
	set -f # URNs are words split on newlines only, never globbed
	IFS=$newline
	if ! export_json=$(pulumi stack export --stack "$stack" </dev/null) ||
		! protected=$(printf '%s' "$export_json" | stackstate protected); then
		say "cannot read which resources of stack $stack are protected; nothing was changed"
		exit 1
	fi
	# Ctrl-C reaches pulumi too (same process group); the shell runs the trap once pulumi has
	# returned, and then goes on to protect everything again.
	trap 'interrupted=130' INT
	trap 'interrupted=143' TERM
	trap 'reprotect' EXIT
	for urn in $protected; do
		[ "$interrupted" -eq 0 ] || break
		if ! pulumi state unprotect --yes --stack "$stack" "$urn" </dev/null; then
			say "could not unprotect $urn; nothing was destroyed"
			reprotect || true
			exit 1
		fi
		unprotected="$unprotected$urn$newline"
	done
	status=0
	if [ "$interrupted" -eq 0 ]; then
		pulumi destroy "$@" --stack "$stack" || status=$?
	fi
	if [ "$status" -eq 0 ] && [ "$interrupted" -ne 0 ]; then
		status=$interrupted
	fi
	if ! reprotect && [ "$status" -eq 0 ]; then
		status=1
	fi
	exit "$status"
}

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
	# Checked whenever the passphrase in effect is empty, set by the user or not.
	if passphrase_empty; then
		choose_passphrase "$@"
	fi
fi

# Its messages go to stderr: stdout is the command's own (`make preview` reads `preview --json`).
# A fleet rollout runs several stacks of this project at once: it creates and selects each one
# beforehand, one at a time, and sets KPT_CATALOG_SELECT=no, because `stack select` writes the
# project's one workspace file, which parallel writers corrupt (pulumi/pulumi#8186). Every
# command below names its stack with --stack anyway.
if [ "${KPT_CATALOG_SELECT:-yes}" != no ]; then
	pulumi stack select --create "$stack" >&2
fi
if [ "$1" = destroy-all ]; then
	shift
	destroy_all "$@"
fi
# Without a Python language host next to the CLI or on PATH (a CLI built from its Go module has
# none), the program is served from the project's virtualenv instead (kpt_catalog/program_host.py).
pulumi_dir=$(dirname -- "$(command -v pulumi)")
if [ ! -x "$pulumi_dir/pulumi-language-python" ] && ! command -v pulumi-language-python >/dev/null 2>&1; then
	exec "$python" -m kpt_catalog.program_host pulumi "$@" --stack "$stack"
fi
exec pulumi "$@" --stack "$stack"
