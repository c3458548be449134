import * as pulumi from "@pulumi/pulumi";
import { shq } from "./shell";

/** A PEM certificate and its private key; the key is always treated as a secret. */
export interface CertPair {
  readonly certPem: pulumi.Input<string>;
  readonly keyPem: pulumi.Input<string>;
}

/** What a refused trust change tells the user: the three ups of a rotation (README "Rotating the CA"). */
export const ROTATION_STEPS = "rotate in three ups (README \"Rotating the CA\"): 1) add the new CA as hastack:certificates.extraTrustedCaPem; "
  + "2) make it caCertPem (with its key, or servers re-issued by it) and move the old CA to extraTrustedCaPem; 3) remove extraTrustedCaPem";

/**
 * A putFile `validate` for a trust bundle (staged in $NEW): every block is a certificate, and no certificate the hosts
 * serve right now loses its trust, since whoever verifies with this bundle would refuse them until they are re-issued.
 * `served` is shell printing the certificates in use as pairs of lines (what serves it, then its file), one PEM per file (it may write files into
 * "$tmp", removed afterwards); a missing or empty file is skipped: nothing is served there yet. Runs in putFile's
 * validate subshell, so its trap is its own. The old bundle stays in place when this fails.
 */
export function renderTrustCheck(served: string, trustKey: string): string {
  return [
    `tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT`,
    // every block must parse, not only the first one `openssl x509` reads
    `n=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$NEW" || true); [ "$n" -ge 1 ] || { echo "no certificate in the trust bundle" >&2; exit 1; }`,
    `[ "$(openssl storeutl -noout -certs "$NEW" 2>/dev/null | grep -c '^[0-9]*: Certificate$')" = "$n" ] || { echo "a block of the trust bundle is not a certificate" >&2; exit 1; }`,
    `{ ${served}
} > "$tmp/served"`,
    `while IFS= read -r what && IFS= read -r file; do`,
    `  [ -s "$file" ] || continue`,
    `  if ! openssl verify -CAfile "$NEW" "$file" >/dev/null 2>&1; then`,
    `    printf 'refused: %s serves a certificate issued by %s, which %s would no longer trust; %s\n' "$what" `
      + `"$(openssl x509 -noout -issuer -in "$file" | sed 's/^issuer=//')" ${shq(trustKey)} ${shq(ROTATION_STEPS)} >&2`,
    "    exit 1",
    "  fi",
    `done < "$tmp/served"`,
  ].join("\n");
}
