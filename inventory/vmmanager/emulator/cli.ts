// Run the emulator on its own: `npx ts-node inventory/vmmanager/emulator/cli.ts [options.json]`.
// The options file holds EmulatorOptions without hooks (pools, clusters, templates, port); the one
// user's password comes from VMMANAGER_EMULATOR_PASSWORD, so it is in neither argv nor a file.
import * as fs from "fs";
import { EmulatorOptions, startEmulator } from "./server";

async function main(): Promise<void> {
  const file = process.argv[2];
  const opts: EmulatorOptions & { user?: string } = file ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
  const password = process.env.VMMANAGER_EMULATOR_PASSWORD;
  if (!password) throw new Error("set VMMANAGER_EMULATOR_PASSWORD to the password the emulator's user logs in with");
  const emu = await startEmulator({ ...opts, users: { [opts.user ?? "admin@example.com"]: password } });
  console.log(emu.url);
  const stop = () => void emu.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e) => { console.error(e.message); process.exit(1); });
