import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';

/**
 * R-A.4a and appendix B: devices are registered with a unique identity and the inputs of their
 * classification; the level is computed, impossible classes are refused, and a CSV inventory is
 * imported whole or not at all.
 */
const HEADER = 'name,host,protocols,ssh_port,udi,ip,mac,type,manufacturer,model,department,location,usage_form,contact,severity,effect';

describe('the device inventory', () => {
  let fx: GatewayFixture;
  let admin: ApiClient;

  beforeAll(async () => {
    fx = await startGatewayFixture();
    const a = await fx.addUser('inv-admin', ['admin']);
    admin = new ApiClient(fx.gw.web.port);
    await admin.login(a.name, a.password, { code: await new TotpSource().code(a.totpSecret) });
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('computes the level on registration and says it in --json', async () => {
    const r = await fx.cli(['device', 'add', 'ct-9', '--host', '10.20.0.15', '--protocol', 'ssh', '--udi', '(01)04046964502231', '--json',
      '--usage-form', 'ionising-radiation', '--contact', 'body', '--severity', 'serious', '--manufacturer', 'Siemens', '--model', 'SOMATOM go.Up',
      '--department', 'Radiology', '--location', 'B2-014', '--ip', '10.20.0.15', '--mac', '00:1B:44:11:3A:B7']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'ct-9', level: 3, udi: '(01)04046964502231', mac: '00:1b:44:11:3a:b7', ports: { ssh: 22 }, state: 'active' });
  });

  it('refuses a combination table B.1 marks "—", and a body form without body contact', async () => {
    const dash = await fx.cli(['device', 'add', 'sw-1', '--host', 'h', '--protocol', 'ssh', '--udi', 'U-SW1', '--usage-form', 'standalone-software', '--contact', 'none', '--effect', 'none']);
    expect(dash.code).toBe(1);
    expect(dash.stderr).toContain('standalone-software');
    const mixed = await fx.cli(['device', 'add', 'x-1', '--host', 'h', '--protocol', 'ssh', '--udi', 'U-X1', '--usage-form', 'implant', '--contact', 'none', '--effect', 'indirect']);
    expect(mixed.code).toBe(1);
    const missingUdi = await fx.cli(['device', 'add', 'x-2', '--host', 'h', '--protocol', 'ssh', '--usage-form', 'laboratory', '--contact', 'none', '--effect', 'none']);
    expect(missingUdi.code).toBe(2);
    expect(missingUdi.stderr).toContain('--udi is required');
    expect((await fx.gw.runtime.store.listDevices()).map((d) => d.name)).toEqual(['ct-9']);
  });

  it('imports nothing of a CSV file with a bad row, and names every bad row by its line', async () => {
    const file = path.join(fx.dir, 'bad.csv');
    writeFileSync(file, [
      HEADER,
      'lab-1,10.0.0.1,ssh,22,U-LAB-1,10.0.0.1,,analyser,Roche,cobas 8000,Lab,L1,laboratory,none,,indirect',
      'lab-2,10.0.0.2,ssh,22,U-LAB-2,not-an-ip,,analyser,Roche,cobas 8000,Lab,L1,laboratory,none,,indirect',
      'sw-2,10.0.0.3,ssh,22,U-SW-2,,,software,Acme,PACS,IT,DC,standalone-software,none,,none',
      'lab-4,10.0.0.4,ssh,22,U-LAB-1,,,analyser,Roche,cobas,Lab,L1,laboratory,none,,none',
      'ct-9,10.0.0.5,ssh,22,U-NEW,,,CT,Siemens,x,Rad,B1,ionising-radiation,body,serious,',
      '"lab,6",10.0.0.6,ssh,70000,U-LAB-6,,,analyser,"Roche, Basel",c,Lab,L1,laboratory,none,,none',
    ].join('\n'));
    const r = await fx.cli(['device', 'import', file, '--json']);
    expect(r.code).toBe(1);
    const problems = (JSON.parse(r.stdout) as { problems: Array<{ line: number; message: string }> }).problems;
    expect(problems.map((p) => p.line)).toEqual([3, 4, 5, 6, 7]);
    expect(problems[0]?.message).toContain('ip');
    expect(problems[1]?.message).toContain('standalone-software');
    expect(problems[2]?.message).toContain('given twice in this file (line 2)');
    expect(problems[3]?.message).toContain('ct-9 is already registered');
    expect(r.stderr + r.stdout).not.toContain('Imported');
    expect((await fx.gw.runtime.store.listDevices()).map((d) => d.name)).toEqual(['ct-9']);
  });

  it('imports a good file whole, and exports what import takes back', async () => {
    const file = path.join(fx.dir, 'good.csv');
    writeFileSync(file, `\ufeff${HEADER}\r\nlab-1,10.0.0.1,ssh vnc,2222,U-LAB-1,10.0.0.1,,analyser,Roche,cobas 8000,Laboratory,"L1, room 3",laboratory,none,,indirect\r\nmon-1,10.0.0.9,ssh,,U-MON-1,,,monitor,Mindray,BeneVision,ICU,ICU-4,diagnosis-monitoring,body,harm,\r\n`);
    const r = await fx.cli(['device', 'import', file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Imported 2 device(s)');
    const lab = await fx.gw.runtime.store.getDevice('lab-1');
    expect(lab).toMatchObject({ protocols: ['ssh', 'vnc'], ports: { ssh: 2222, vnc: 5900 }, location: 'L1, room 3' });
    const out = path.join(fx.dir, 'export.csv');
    expect((await fx.cli(['device', 'export', '-o', out])).code).toBe(0);
    const exported = readFileSync(out, 'utf8');
    expect(exported.split('\r\n')[0]).toBe(`${HEADER.replace('ssh_port,', 'ssh_port,vnc_port,rdp_port,')},level,state`);
    expect(exported).toContain('lab-1,10.0.0.1,ssh vnc,2222,5900,,U-LAB-1');
    expect(exported).toMatch(/mon-1,.*,2,active/);
  });

  it('imports through the API too, all or nothing, and only for admins', async () => {
    const bad = await admin.post<{ imported: string[]; problems: Array<{ line: number }> }>('/api/devices/import', {
      csv: `${HEADER}\nlab-7,10.0.0.7,ssh,22,U-LAB-7,,,a,b,c,d,e,laboratory,none,,none\nlab-8,10.0.0.8,ftp,22,U-LAB-8,,,a,b,c,d,e,laboratory,none,,none\n`,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.problems.map((p) => p.line)).toEqual([3]);
    expect(await fx.gw.runtime.store.getDevice('lab-7')).toBeNull();
    const good = await admin.post<{ imported: string[] }>('/api/devices/import', { csv: `${HEADER}\nlab-7,10.0.0.7,ssh,22,U-LAB-7,,,a,b,c,d,e,laboratory,none,,none\n` });
    expect(good.body.imported).toEqual(['lab-7']);
    const dev = await admin.get<{ level: number; classification: { effect: string } }>('/api/devices/lab-7');
    expect(dev.body).toMatchObject({ level: 1, classification: { effect: 'none' } });
  });
});
