import {
  DatabaseTarget, WorksPadNodeDefaults, npgsqlValue, renderConnectionString, renderDebconfSelections, renderHealthProbe,
  renderInstallScript, renderMicrosoftSource, renderPreseedScript, renderRestartScript, renderSetConnectionStringScript,
} from "../../components/worksPadNode";
import { SPECIAL_PASSWORD, parseWithDouble } from "../workspad-double/testkit";

const plain: DatabaseTarget = { host: "10.213.7.50", port: 6432, database: "workspad", user: "workspad", password: "s3cretPassw0rd" };
const special: DatabaseTarget = { ...plain, password: SPECIAL_PASSWORD };
const Q = WorksPadNodeDefaults.debconfQuestions;

describe("WorksPadNode rendering", () => {
  test("connection string", () => {
    expect(renderConnectionString(plain)).toMatchSnapshot();
  });

  test("connection string with the password jhYg/=\\F'\"$ quotes it and doubles the quote", () => {
    const cs = renderConnectionString(special);
    expect(cs).toBe(`Host=10.213.7.50;Port=6432;Database=workspad;Username=workspad;Password="jhYg/=\\F'""$"`);
    expect(cs).toMatchSnapshot();
  });

  test("the server's own parser reads every special password back unchanged", () => {
    for (const password of [SPECIAL_PASSWORD, `a;b`, `=x=`, `'quoted'`, `"`, ` padded `, ``, `semi;"both'`]) {
      expect(parseWithDouble(renderConnectionString({ ...plain, password }))).toEqual({
        host: "10.213.7.50", port: "6432", database: "workspad", username: "workspad", password,
      });
    }
  });

  test.each([
    ["plain", "abc", "abc"], ["semicolon", "a;b", `"a;b"`], ["equals", "a=b", `"a=b"`], ["single quote", "a'b", `"a'b"`],
    ["double quote", `a"b`, `"a""b"`], ["empty", "", `""`], ["outer spaces", " a ", `" a "`],
  ])("a %s value is written as the parser expects", (_what, v, want) => expect(npgsqlValue(v)).toBe(want));

  test("debconf selections", () => {
    expect(renderDebconfSelections("workspad", Q, plain)).toMatchSnapshot();
  });

  test("debconf selections with the password jhYg/=\\F'\"$ carry it verbatim as the rest of the line", () => {
    const sel = renderDebconfSelections("workspad", Q, special);
    expect(sel.split("\n")[3]).toBe(`workspad workspad/db_password password ${SPECIAL_PASSWORD}`);
    expect(sel).toMatchSnapshot();
  });

  test("debconf selections refuse a value debconf would change (line break, trailing backslash)", () => {
    expect(() => renderDebconfSelections("workspad", Q, { ...plain, password: "a\nb" })).toThrow(/password cannot be preseeded/);
    expect(() => renderDebconfSelections("workspad", Q, { ...plain, password: "ab\\" })).toThrow(/ends with "\\"/);
  });

  test("preseed script", () => expect(renderPreseedScript()).toMatchSnapshot());
  test("install script", () => expect(renderInstallScript("/var/cache/hastack/workspad_1.0_all.deb", "workspad")).toMatchSnapshot());
  test("set-connection-string script", () => expect(renderSetConnectionStringScript("/opt/workspad/appsettings.json")).toMatchSnapshot());
  test("restart script", () => expect(renderRestartScript(["workspad", "workspad-worker"])).toMatchSnapshot());
  test("health probe", () => expect(renderHealthProbe(4430, "/health")).toMatchSnapshot());
  test("Microsoft apt source", () => expect(renderMicrosoftSource(WorksPadNodeDefaults.microsoftRepoSource)).toMatchSnapshot());

  test("no secret and no connection string ever appears in a script", () => {
    const scripts = [renderPreseedScript(), renderInstallScript("/var/cache/hastack/x.deb", "workspad"),
      renderSetConnectionStringScript("/opt/workspad/appsettings.json")].join("\n");
    expect(scripts).not.toContain(SPECIAL_PASSWORD);
    expect(scripts).not.toContain("Password=");
  });
});
