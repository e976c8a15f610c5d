// DID resolution at the local PLC, as the reference libraries do it.
import { IdResolver } from '@atproto/identity'

/**
 * An @atproto/identity resolver for `plcUrl`. Its default fetch refuses
 * http:// and IP hosts (SSRF protection); the local PLC is both, so it takes
 * the plain fetch, as the library's own tests do.
 */
export const plcResolver = (plcUrl) => new IdResolver({ plcUrl, fetch: globalThis.fetch })
