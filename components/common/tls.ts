import * as pulumi from "@pulumi/pulumi";

/** A PEM certificate and its private key; the key is always treated as a secret. */
export interface CertPair {
  readonly certPem: pulumi.Input<string>;
  readonly keyPem: pulumi.Input<string>;
}
