// MQTT.js doing SCRAM (RFC 5802 / RFC 7677) against nanomq, for tests/e2e_scram.rs.
//
//   node scram.js HOST PORT MECHANISM USER PASSWORD [REAUTH_USER REAUTH_PASSWORD]
//
// The client-first message goes in CONNECT's Authentication Data; the broker's AUTH
// (Continue) reaches MQTT.js's handleAuth, which answers with client-final; CONNACK carries
// server-final, which is checked against the ServerSignature computed here. With REAUTH_*,
// the client then re-authenticates (AUTH 0x19) and, if that succeeds, checks the connection
// still carries a message. (MQTT.js's `authPacket` option sends an extra AUTH right after
// CONNECT; SCRAM's first message belongs in CONNECT itself, so it is not used.)
//
// Prints one JSON line: { connack, serverVerified, error, reauth: { reasonCode,
// serverVerified }, disconnect, roundTrip }. MQTT.js comes from NODE_PATH.

'use strict';

const crypto = require('crypto');
const mqtt = require('mqtt');

const [host, port, mechanism, user, password, reauthUser, reauthPassword] =
  process.argv.slice(2);
const hash = { 'SCRAM-SHA-256': 'sha256', 'SCRAM-SHA-512': 'sha512' }[mechanism];
if (!hash) throw new Error(`unknown mechanism ${mechanism}`);
const hashLen = hash === 'sha256' ? 32 : 64;

const hmac = (key, data) => crypto.createHmac(hash, key).update(data).digest();
const saslname = (name) => name.replace(/=/g, '=3D').replace(/,/g, '=2C');

// One SCRAM exchange, client side.
class Scram {
  constructor(username, pass) {
    this.password = pass;
    this.nonce = crypto.randomBytes(18).toString('base64');
    this.bare = `n=${saslname(username)},r=${this.nonce}`;
    this.expected = null;
  }

  first() {
    return Buffer.from(`n,,${this.bare}`);
  }

  final(serverFirstBuf) {
    const serverFirst = serverFirstBuf.toString();
    const attrs = Object.fromEntries(
      serverFirst.split(',').map((a) => [a.slice(0, 1), a.slice(2)]),
    );
    if (!attrs.r.startsWith(this.nonce) || attrs.r.length <= this.nonce.length) {
      throw new Error(`server nonce does not extend ours: ${serverFirst}`);
    }
    const salted = crypto.pbkdf2Sync(
      this.password, Buffer.from(attrs.s, 'base64'), Number(attrs.i), hashLen, hash,
    );
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = crypto.createHash(hash).update(clientKey).digest();
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${attrs.r}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ signature[i];
    this.expected = `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`;
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }
}

const result = {};
let done = false;
let client;
function finish() {
  if (done) return;
  done = true;
  console.log(JSON.stringify(result));
  client.end(true, () => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
setTimeout(() => {
  result.timeout = true;
  finish();
}, 20000).unref();

let exchange = new Scram(user, password);
client = mqtt.connect({
  host,
  port: Number(port),
  protocolVersion: 5,
  clientId: `scram-js-${process.pid}`,
  reconnectPeriod: 0,
  connectTimeout: 15000,
  properties: { authenticationMethod: mechanism, authenticationData: exchange.first() },
});

client.handleAuth = (packet, callback) => {
  const data = packet.properties && packet.properties.authenticationData;
  if (packet.reasonCode === 24) {
    let answer;
    try {
      answer = exchange.final(data);
    } catch (e) {
      callback(e);
      return;
    }
    callback(null, {
      cmd: 'auth',
      reasonCode: 24,
      properties: { authenticationMethod: mechanism, authenticationData: answer },
    });
    return;
  }
  // Success (0): the end of a re-authentication.
  result.reauth = {
    reasonCode: packet.reasonCode,
    serverVerified: !!data && data.toString() === exchange.expected,
  };
  callback();
  roundTrip();
};

// After a re-authentication: the connection still carries a message.
function roundTrip() {
  const topic = `scram/${process.pid}`;
  client.on('message', (t, payload) => {
    result.roundTrip = t === topic && payload.toString() === 'after reauth';
    finish();
  });
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) {
      result.subscribeError = String(err);
      finish();
      return;
    }
    client.publish(topic, 'after reauth', { qos: 1 });
  });
}

client.on('connect', (connack) => {
  result.connack = connack.reasonCode;
  const data = connack.properties && connack.properties.authenticationData;
  result.serverVerified = !!data && data.toString() === exchange.expected;
  if (!reauthUser) {
    finish();
    return;
  }
  exchange = new Scram(reauthUser, reauthPassword);
  client._sendPacket({
    cmd: 'auth',
    reasonCode: 25,
    properties: { authenticationMethod: mechanism, authenticationData: exchange.first() },
  });
});
client.on('disconnect', (packet) => {
  result.disconnect = packet.reasonCode;
  finish();
});
client.on('error', (e) => {
  result.error = e.code === undefined ? String(e) : e.code;
  finish();
});
client.on('close', () => {
  result.closed = true;
  // A refusal arrives as 'error' or 'disconnect' first; give it a moment.
  setTimeout(finish, 200);
});
