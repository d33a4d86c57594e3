// The console's pages, in navigation order. To add one: a module exporting {id, title, roles, mount},
// listed here; `roles` are those that see it (the API still decides what each call may do).
import affiliates from './affiliates.js';
import campaigns from './campaigns.js';
import codes from './codes.js';
import rewards from './rewards.js';
import stats from './stats.js';

export const PAGES = [campaigns, rewards, codes, affiliates, stats];
