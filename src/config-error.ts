/**
 * A setting is wrong: the message is one line that names the variable (or the keys file and its
 * line). Thrown at start-up, and by a keys file reload; it never reaches a client.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
