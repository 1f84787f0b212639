import { connect } from 'mqtt';
import { GuardianError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

/** `guardian watch`: print every message on a topic filter (for users without mosquitto_sub). */
export async function watch(url: string, topic: string): Promise<number> {
  const client = connect(url, { reconnectPeriod: 1000, connectTimeout: 5000 });
  const shown = redactUrl(url); // a --url with user:pass@ works, and is never printed
  client.on('connect', () => {
    process.stderr.write(`watching ${topic} on ${shown} (Ctrl-C to stop)\n`);
    client.subscribe(topic, { qos: 1 }, (err) => {
      if (err) process.stderr.write(`subscribe failed: ${err.message}\n`);
    });
  });
  client.on('error', (err) => {
    process.stderr.write(`${new GuardianError('GUARDIAN_E_MQTT_CONNECT', `${shown}: ${redactUrl(err.message)}`).message}\n`);
  });
  client.on('message', (t, payload, packet) => {
    process.stdout.write(`${t}${packet.retain ? ' (retained)' : ''} ${payload.toString('utf8')}\n`);
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await client.endAsync();
  return 0;
}
