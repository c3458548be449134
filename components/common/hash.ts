import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";

/** sha256 of plain strings, hex. */
export function sha256(...parts: string[]): string {
  const h = crypto.createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
}

/**
 * Content hash of (possibly secret) inputs, used as a `triggers` entry so a daemon restarts
 * exactly when what it reads changes. A hash of a secret stays marked secret.
 */
export function contentHash(...parts: pulumi.Input<string>[]): pulumi.Output<string> {
  return pulumi.all(parts).apply((vals) => sha256(...vals));
}
