/** An error with an HTTP status, answered as Next answers its `ApiError`. */
export class ApiError extends Error {
  /**
   * @param {number} statusCode
   * @param {string} message
   */
  constructor(statusCode, message) {
    super(message);
    this.statusCode = statusCode;
  }
}

/**
 * Ends the response as Next's `sendError`: status, status text and body are the message.
 * (After headers went out only the message is appended, as in Next.)
 * @param {import('node:http').ServerResponse} res
 * @param {number} statusCode
 * @param {string} message
 */
export function sendError(res, statusCode, message) {
  res.statusCode = statusCode;
  res.statusMessage = message;
  res.end(message);
}
