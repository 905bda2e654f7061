import { loadConfig } from '../../gateway/config/load.js';
import { createUser } from '../../gateway/identity/users.js';
import { createLogger } from '../../gateway/log/logger.js';
import { openRuntime } from '../../gateway/runtime.js';
import type { Role } from '../../policy/types.js';

/**
 * A staff account made in-process, for tests and benches whose subject is something else (a
 * cluster's kill, a bench's sessions): a privileged role is a named admin's decision confirmed by
 * a second admin (S-1.3), which the host operator's CLI may not make, and going through that here
 * would only add TOTP steps. Returns the TOTP secret of its enrolment.
 */
export async function staffInProcess(configFile: string, name: string, role: Role, password: string, by = 'test'): Promise<string> {
  const rt = await openRuntime(loadConfig(configFile), { log: createLogger('warn') });
  try {
    const uri = (await createUser(rt, { name, roles: [role], org: null, password, expiresAt: null, nda: null }, by)).otpauthUri as string;
    return new URL(uri).searchParams.get('secret') as string;
  } finally {
    await rt.close();
  }
}
