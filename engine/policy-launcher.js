#!/usr/bin/env node
// @ts-check
// Our analyzer launcher for Node.js policy packs (README "Policies"). A CLI without the Node.js
// language host (the one scripts/setup-engine.sh builds here) starts a Node.js policy pack by running
// `pulumi-analyzer-policy-nodejs <engine address> . [-option=value…]` from PATH, in the pack's
// directory (pkg/v3 resource/plugin/analyzer_plugin.go, NewPolicyAnalyzer); release CLIs ship a
// launcher of that name or go through the language host. scripts/setup-engine.sh writes a
// two-line shell wrapper of that name which runs this file.
//
// The pack is TypeScript. It is transpiled, not type-checked, here: a type check of the pack and
// @pulumi/pulumi's declarations costs seconds on every preview and up, and `tsc --noEmit -p .`
// (tests, CI) already checks it. The pack's PolicyPack starts @pulumi/policy's gRPC server, which
// prints the port the CLI connects to on stdout; nothing else may be written to stdout first.
"use strict";
const path = require("path");

const [engineAddress, packDir] = process.argv.slice(2);
if (!engineAddress || !packDir) {
  process.stderr.write("usage: pulumi-analyzer-policy-nodejs ENGINE_ADDRESS POLICY_PACK_DIR [-option=value…]\n");
  process.exit(2);
}
const dir = path.resolve(packDir);
// @pulumi/policy reads the pack's version from ./package.json
process.chdir(dir);
// resolve ts-node from the pack's own node_modules (walking up), as the pack's imports are
require(require.resolve("ts-node", { paths: [dir] })).register({ transpileOnly: true, compilerOptions: { module: "commonjs" } });
// the engine address is not needed by an analyzer; options other than the address and the directory are ignored
process.on("unhandledRejection", (e) => { process.stderr.write(`policy pack: ${e}\n`); process.exit(1); });
require(dir);
