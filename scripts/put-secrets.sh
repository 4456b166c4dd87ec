#!/usr/bin/env bash
# Writes wagate's secrets to SSM Parameter Store as SecureString parameters, the default deploy
# path (samconfig.toml names them; the functions read them at cold start and never carry them in
# their configuration):
#   /wagate/sources         the WAGATE_SOURCES JSON list: every source with its secrets
#   /wagate/admin-api-keys  the management API key(s), comma-separated during a rotation
#
#   scripts/put-secrets.sh --sources sources.json [--admin-keys-file FILE] [--kms-key-id KEY]
#                          [--prefix /wagate] [--region REGION]
#
# Without --admin-keys-file a new random key is made and printed once (keep it: it is the
# X-API-Key of the management API). --kms-key-id encrypts both with a customer managed key;
# give its ARN to the stack too (SecretsKmsKeyArn) so the functions may decrypt with it. Values
# pass through a private temporary file, never the command line (which other users can list).
set -euo pipefail

prefix=/wagate
sources=""
admin_file=""
kms=()
region=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sources) sources="$2"; shift 2 ;;
    --admin-keys-file) admin_file="$2"; shift 2 ;;
    --kms-key-id) kms=(--key-id "$2"); shift 2 ;;
    --prefix) prefix="${2%/}"; shift 2 ;;
    --region) region=(--region "$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$sources" ] || { echo "--sources FILE is required (the WAGATE_SOURCES JSON list, README: Sources)" >&2; exit 2; }
command -v aws >/dev/null || { echo "the AWS CLI is needed (aws configure)" >&2; exit 2; }

# The sources must be a non-empty JSON list of objects with an id and a provider: the ingest
# function refuses to start otherwise, which is better found now than at the first webhook.
python3 - "$sources" <<'PY'
import json, sys
try:
    value = json.load(open(sys.argv[1], encoding="utf-8"))
except (OSError, ValueError) as e:
    sys.exit(f"{sys.argv[1]}: not a readable JSON file ({e.__class__.__name__})")
if not isinstance(value, list) or not value:
    sys.exit("the sources file must hold a non-empty JSON list")
for s in value:
    if not isinstance(s, dict) or not s.get("id") or not s.get("provider"):
        sys.exit("every source needs an id and a provider")
PY

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$admin_file" ]; then
  tr -d '\n' <"$admin_file" >"$tmp/admin"
else
  python3 -c 'import secrets; print(secrets.token_hex(24), end="")' >"$tmp/admin"
  echo "management API key (X-API-Key), shown once: $(cat "$tmp/admin")"
fi
[ "$(wc -c <"$tmp/admin")" -ge 16 ] || { echo "an admin key has at least 16 characters" >&2; exit 2; }
cp "$sources" "$tmp/sources"

put() {
  aws ssm put-parameter "${region[@]}" --type SecureString "${kms[@]}" --overwrite \
    --name "$1" --value "file://$2" >/dev/null
  echo "wrote $1"
}
put "$prefix/sources" "$tmp/sources"
put "$prefix/admin-api-keys" "$tmp/admin"
echo "deploy with: sam deploy --guided   (SourcesParameter=$prefix/sources AdminApiKeysParameter=$prefix/admin-api-keys${kms:+, SecretsKmsKeyArn=<the key ARN>})"
