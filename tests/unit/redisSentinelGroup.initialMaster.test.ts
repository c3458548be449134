import * as fc from "fast-check";
import { chooseInitialMaster, parseSurvey } from "../../components/redisSentinelGroup/initialMaster";

const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));

describe("the initial master after pulumi destroy (issue 7 §5)", () => {
  it("reads the survey line, and treats anything else as nothing known", () => {
    expect(parseSurvey("hastack-redis-survey offset=1234\n")).toEqual({ offset: 1234n });
    expect(parseSurvey("hastack-redis-survey offset=none\n")).toEqual({});
    expect(parseSurvey("")).toEqual({});
    expect(parseSurvey("hastack-redis-survey offset=12; rm -rf /")).toEqual({});
  });
  it("a new group (no data anywhere) starts on the first node", () => {
    expect(chooseInitialMaster(NODES, [{}, {}, {}])).toBe(NODES[0]);
  });
  it("does not make the first node master over a node with newer data", () => {
    expect(chooseInitialMaster(NODES, [{ offset: 100n }, { offset: 5000n }, { offset: 4000n }])).toBe(NODES[1]);
    expect(chooseInitialMaster(NODES, [{}, {}, { offset: 1n }])).toBe(NODES[2]);
  });
  it("keeps the earlier node on a tie (replicas in sync with their master)", () => {
    expect(chooseInitialMaster(NODES, [{ offset: 7n }, { offset: 9n }, { offset: 9n }])).toBe(NODES[1]);
  });
  it("always picks a node whose offset no other node exceeds", () => {
    const survey = fc.option(fc.bigUintN(64), { nil: undefined }).map((o) => (o === undefined ? {} : { offset: o }));
    fc.assert(fc.property(fc.array(survey, { minLength: 3, maxLength: 7 }), (surveys) => {
      const nodes = surveys.map((_, i) => ({ name: `n${i}`, address: `10.0.0.${i + 1}` }));
      const i = nodes.indexOf(chooseInitialMaster(nodes, surveys));
      const best = surveys[i].offset ?? -1n;
      for (const [k, v] of surveys.entries()) {
        expect((v.offset ?? -1n) <= best).toBe(true);
        if ((v.offset ?? -1n) === best) expect(k).toBeGreaterThanOrEqual(i);
      }
    }));
  });
});
