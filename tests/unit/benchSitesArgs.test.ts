import { parseArgs } from "../../bench/sites";

describe("bench:sites arguments", () => {
  it("reads the run count, the pool mode and --switchovers-only in any order", () => {
    expect(parseArgs(["--pool-mode", "transaction", "2", "--switchovers-only"])).toEqual({ runs: 2, poolMode: "transaction", switchoversOnly: true });
    expect(parseArgs([])).toEqual({ runs: 3, poolMode: undefined, switchoversOnly: false });
  });

  it("refuses a pool mode the bench does not compare, naming it", () => {
    expect(() => parseArgs(["3", "--pool-mode", "statement"])).toThrow("--pool-mode statement: expected session or transaction");
    expect(() => parseArgs(["--pool-mode"])).toThrow("expected session or transaction");
  });
});
