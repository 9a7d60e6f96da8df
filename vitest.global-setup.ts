import { startTestServices } from '@socketbridge/devkit';

/**
 * One Redis and one RabbitMQ vhost for the whole test run, handed to every test file and every
 * process they start through the environment (test workers are forked after this runs).
 */
export default async function setup(): Promise<() => Promise<void>> {
  const services = await startTestServices();
  Object.assign(process.env, services.env);
  return services.stop;
}
