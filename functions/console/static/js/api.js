// The API client: every call carries the operator's bearer token; errors keep the API's
// {"error": {"code", "message", "details": [{"field", "message"}]}} so forms can show them by field.

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || `HTTP_${status}`;
    this.details = error?.details || [];
  }
}

/** A client bound to a token getter; `onUnauthorized` runs when the API refuses the token (401). */
export function createApi(token, onUnauthorized) {
  async function request(method, path, { query, body, raw } = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
    }
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401) onUnauthorized();
    if (!response.ok) {
      const answer = await response.json().catch(() => null);
      throw new ApiError(response.status, answer?.error);
    }
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
  return {
    get: (path, query) => request('GET', path, { query }),
    post: (path, body = {}) => request('POST', path, { body }),
    put: (path, body) => request('PUT', path, { body }),
    del: (path) => request('DELETE', path),
    /** A binary answer (an SVG chart) as an object URL the caller revokes. */
    objectUrl: async (path, query) => URL.createObjectURL(await (await request('GET', path, { query, raw: true })).blob()),
  };
}

/** Path segments are user input: always encode them. */
export const seg = (value) => encodeURIComponent(value);
