/**
 * MOCK TEST — checks the command contract of ApfsRamDisk (which commands run,
 * in which order, and that a failure or close() always detaches) with a fake
 * command runner. It runs on every OS and does NOT test APFS, hdiutil or
 * diskutil; the real tests are in macos.test.ts (macOS only).
 */
import { describe, expect, it } from "vitest";
import { ApfsRamDisk, parseAttachOutput, ramSectors, type CommandRunner } from "../src/index.js";

function mockRunner(failAt?: string): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  const run: CommandRunner = (cmd, args) => {
    const line = [cmd, ...args].join(" ");
    calls.push(line);
    if (failAt && line.includes(failAt)) return { status: 1, stdout: "", stderr: "mock failure" };
    if (cmd === "hdiutil" && args[0] === "attach") return { status: 0, stdout: "/dev/disk9          \t                               \t\n", stderr: "" };
    return { status: 0, stdout: "", stderr: "" };
  };
  return { run, calls };
}

describe("MOCK: ApfsRamDisk command contract (does not test APFS)", () => {
  it("attach -nomount ram://<sectors>, erasevolume APFS, detach -force on close", () => {
    const m = mockRunner();
    const d = ApfsRamDisk.create({ size: 64 * 1024 * 1024, name: "vol", runner: m.run });
    expect(d.device).toBe("/dev/disk9");
    expect(d.mountPoint).toBe("/Volumes/vol");
    expect(m.calls).toEqual(["hdiutil attach -nomount ram://131072", "diskutil erasevolume APFS vol /dev/disk9"]);
    expect(d.close()).toBe(true);
    expect(d.close()).toBe(true); // idempotent
    expect(m.calls.slice(2)).toEqual(["hdiutil detach /dev/disk9 -force"]);
  });

  it("a failed erasevolume detaches the half-made device and throws EIO", () => {
    const m = mockRunner("erasevolume");
    expect(() => ApfsRamDisk.create({ name: "v", runner: m.run })).toThrow(/EIO/);
    expect(m.calls.at(-1)).toBe("hdiutil detach /dev/disk9 -force");
  });

  it("a failed attach throws EIO and runs nothing else", () => {
    const m = mockRunner("attach");
    expect(() => ApfsRamDisk.create({ runner: m.run })).toThrow(/EIO/);
    expect(m.calls).toHaveLength(1);
  });

  it("sizes and output parsing (pure functions)", () => {
    expect(ramSectors(1)).toBe(1);
    expect(ramSectors(512 * 1024 * 1024)).toBe(1048576);
    expect(() => ramSectors(0)).toThrow(RangeError);
    expect(parseAttachOutput("/dev/disk12   \t\n")).toBe("/dev/disk12");
    expect(() => parseAttachOutput("nothing")).toThrow(/EIO/);
  });
});
