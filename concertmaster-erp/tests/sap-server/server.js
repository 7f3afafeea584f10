// SAP CAP serving API_BUSINESS_PARTNER over OData V4 and (through the
// community adapter) V2, behind the gateway behaviour of S/4HANA the
// connector has to cope with:
//  - basic auth, or a bearer token from POST /oauth/token
//    (client credentials, as SAP's XSUAA issues them);
//  - CSRF: a modifying request needs the x-csrf-token fetched with
//    "x-csrf-token: Fetch" and the session cookie it came with; otherwise
//    403 "CSRF token validation failed" with "x-csrf-token: Required".
// /test/... lets the tests expire sessions, read counters and plan faults:
// POST /test/faults {principal, plan} makes that principal's next modifying
// requests fail as planned, one entry each: "500", "503", "429" (with
// Retry-After: 1), "reset" (the connection drops unanswered), "slow:<ms>"
// (answered late), "lost" (the request is carried out and its answer
// lost: the connection drops instead), "ok" (let through).
// A create that names no BusinessPartner gets the next number, as S/4HANA's
// internal number range assigns one.
const crypto = require('node:crypto')
const cds = require('@sap/cds')
const odataV2 = require('@cap-js-community/odata-v2-adapter')

const USERS = {
  alice: 'alice-secret-4711',
  'csrf-tester': 'csrf-secret-4711',
  'batch-tester': 'batch-secret-4711',
  'crash-tester': 'crash-secret-4711',
  'scan-tester': 'Sc4n-S3cret-0042',
  'fault-tester': 'fault-secret-4711',
  'match-tester': 'match-secret-4711',
}
const CLIENTS = {
  concertmaster: { secret: 'client-secret-0815', expiresIn: 3600 },
  'short-lived': { secret: 'short-secret-0815', expiresIn: 2 },
}
const COOKIE = 'SAP_SESSIONID_CM1_100'

const sessions = new Map() // session id -> { token, principal }
const bearer = new Map() // access token -> { client, expires }
const stats = new Map() // principal -> counters
const faults = new Map() // principal -> { plan: [kind], applied: { kind: n } }

function injectFault(principal, req, res, next) {
  const planned = faults.get(principal)
  const kind = planned?.plan.shift()
  if (!kind || kind === 'ok') return next()
  planned.applied[kind] = (planned.applied[kind] ?? 0) + 1
  const error = (status, extra = {}) =>
    res.status(status).set(extra).json({ error: { code: String(status), message: `injected ${kind}` } })
  if (kind === '500') return error(500)
  if (kind === '503') return error(503)
  if (kind === '429') return error(429, { 'Retry-After': '1' })
  if (kind === 'reset') return req.socket.destroy()
  if (kind.startsWith('slow:')) return setTimeout(next, Number(kind.slice(5)))
  if (kind === 'lost') {
    const drop = () => { req.socket.destroy(); return res }
    res.writeHead = drop
    res.write = () => true
    res.end = drop
    return next()
  }
  throw new Error(`unknown fault ${kind}`)
}

function count(principal, what) {
  const s = stats.get(principal) ?? { csrfFetches: 0, tokenRequests: 0, rejectedCsrf: 0, modifying: 0 }
  s[what]++
  stats.set(principal, s)
}

function basic(header) {
  const m = /^Basic (.+)$/i.exec(header ?? '')
  if (!m) return null
  const text = Buffer.from(m[1], 'base64').toString('utf8')
  const at = text.indexOf(':')
  return at < 0 ? null : { user: text.slice(0, at), password: text.slice(at + 1) }
}

function cookies(header) {
  const out = {}
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=')
    if (at > 0) out[part.slice(0, at).trim()] = part.slice(at + 1).trim()
  }
  return out
}

function unauthorized(res, message) {
  res.status(401).set('WWW-Authenticate', 'Basic realm="SAP NetWeaver Application Server [CM1/100]"')
  res.json({ error: { code: '401', message } })
}

function tokenEndpoint(req, res) {
  let id, secret
  const creds = basic(req.headers.authorization)
  if (creds) ({ user: id, password: secret } = creds)
  else ({ client_id: id, client_secret: secret } = req.body ?? {})
  const client = CLIENTS[id]
  if ((req.body ?? {}).grant_type !== 'client_credentials')
    return res.status(400).json({ error: 'unsupported_grant_type', error_description: 'grant_type must be client_credentials' })
  if (!client || client.secret !== secret)
    return res.status(401).json({ error: 'invalid_client', error_description: 'Bad credentials' })
  count(id, 'tokenRequests')
  const token = crypto.randomBytes(24).toString('hex')
  bearer.set(token, { client: id, expires: Date.now() + client.expiresIn * 1000 })
  res.json({ access_token: token, token_type: 'bearer', expires_in: client.expiresIn, scope: 'API_BUSINESS_PARTNER' })
}

function gateway(req, res, next) {
  let principal
  const auth = req.headers.authorization ?? ''
  const creds = basic(auth)
  if (creds) {
    if (USERS[creds.user] !== creds.password) return unauthorized(res, 'Logon failed')
    principal = creds.user
  } else if (/^Bearer /i.test(auth)) {
    const grant = bearer.get(auth.slice(7).trim())
    if (!grant || grant.expires <= Date.now()) return unauthorized(res, 'Access token expired or invalid')
    principal = grant.client
  } else {
    return unauthorized(res, 'Logon required')
  }

  const jar = cookies(req.headers.cookie)
  let session = sessions.get(jar[COOKIE])
  if (session && session.principal !== principal) session = undefined
  const modifying = !['GET', 'HEAD', 'OPTIONS'].includes(req.method)

  if (!modifying && (req.headers['x-csrf-token'] ?? '').toLowerCase() === 'fetch') {
    count(principal, 'csrfFetches')
    if (!session) {
      const id = crypto.randomBytes(16).toString('hex')
      session = { token: crypto.randomBytes(16).toString('base64'), principal }
      sessions.set(id, session)
      res.append('Set-Cookie', `${COOKIE}=${id}; Path=/; HttpOnly`)
    }
    res.set('x-csrf-token', session.token)
  } else if (modifying) {
    count(principal, 'modifying')
    if (!session || req.headers['x-csrf-token'] !== session.token) {
      count(principal, 'rejectedCsrf')
      return res.status(403).set('x-csrf-token', 'Required').type('text/plain').send('CSRF token validation failed')
    }
    return injectFault(principal, req, res, next)
  }
  next()
}

// S/4HANA numbers a business partner from its number range when a create
// names none: a create repeated after a lost answer then makes a second
// one, unless the client looks first (matchOn).
let nextNumber = 9000000000
cds.on('served', () => {
  const srv = cds.services.API_BUSINESS_PARTNER
  srv.before('CREATE', 'A_BusinessPartner', (req) => {
    if (!req.data.BusinessPartner) req.data.BusinessPartner = String(nextNumber++)
  })
})

cds.on('bootstrap', (app) => {
  const express = require('express')
  // Loopback only: cds.server listens on every interface otherwise.
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, '127.0.0.1', ...rest)
  app.post('/oauth/token', express.urlencoded({ extended: false }), tokenEndpoint)
  app.post('/test/expire-sessions', (req, res) => {
    const principal = req.query.principal
    for (const [id, s] of sessions) if (s.principal === principal) sessions.delete(id)
    res.status(204).end()
  })
  app.get('/test/stats', (req, res) => res.json(stats.get(req.query.principal) ?? {}))
  app.post('/test/faults', express.json(), (req, res) => {
    const { principal, plan } = req.body ?? {}
    faults.set(principal, { plan: [...(plan ?? [])], applied: {} })
    res.status(204).end()
  })
  app.get('/test/faults', (req, res) => {
    const planned = faults.get(req.query.principal) ?? { plan: [], applied: {} }
    res.json({ remaining: planned.plan.length, applied: planned.applied })
  })
  app.use('/odata', gateway)
  app.use(odataV2())
})

module.exports = cds.server
