// Chinese labels first, English on a tap (the choice is kept on the phone). System fonts only: nothing to fetch.
const EN = {
  title: 'Field', online: 'online', offline: 'offline', login_title: 'Grid worker / volunteer sign-in',
  username: 'Username', password: 'Password', login: 'Sign in', login_note: 'For grid workers and volunteers only.',
  history: 'Today and earlier', logout: 'Sign out', reason: 'Reason', reason_busy: 'Busy with another task',
  reason_far: 'Too far away', reason_skill: 'Not equipped for it', reason_other: 'Other', note: 'Note',
  photos: 'Photos (up to 4)', cancel: 'Cancel', send: 'Send', on_duty: 'On duty — tap to go off duty',
  off_duty: 'Off duty — tap to go on duty', sharing: 'Sharing your location every 30 s (±{acc} m)',
  not_sharing: 'Off duty: your location is not shared', accept: 'Accept', decline: 'Decline', arrive: 'Arrived',
  resolve: 'Resolved', hand_up: 'Hand up', waiting: '{n} waiting to send', refused: 'Refused by the server',
  new_offer: 'New assignment', respond_in: 'respond within', due_in: 'time limit', overdue: 'overdue',
  reporter_said: 'Reporter said', eta: 'ETA', distance: 'distance', idle: 'No assignment. Stay on duty to get the nearest ones.',
  idle_off: 'Go on duty to receive assignments.', queued: 'saved — will send when online',
  applied: 'sent', dismiss: 'Dismiss', resolve_title: 'Resolve: note and photos', decline_title: 'Decline: reason',
  hand_up_title: 'Hand up: why it cannot be settled here', no_location: 'no location fix yet',
  feed_ws: 'live', feed_sse: 'live (SSE)', feed_off: 'reconnecting…', status_offered: 'offered',
  status_accepted: 'accepted', status_on_site: 'on site', status_done: 'done', pending_tag: 'waiting to send',
  photo_type: 'only JPEG, PNG or WebP photos', photo_many: 'at most 4 photos', signed_out: 'Signed out: sign in again to send what is waiting',
};
const ZH = {
  title: '外勤', online: '在线', offline: '离线', login_title: '网格员 / 志愿者 登录', username: '用户名', password: '密码',
  login: '登录', login_note: '仅供网格员和志愿者使用。', history: '今日及以往任务', logout: '退出', reason: '原因',
  reason_busy: '正在处理其他事务', reason_far: '距离太远', reason_skill: '不具备处置能力', reason_other: '其他', note: '说明',
  photos: '照片（最多4张）', cancel: '取消', send: '提交', on_duty: '在岗 — 点击下岗', off_duty: '下岗 — 点击上岗',
  sharing: '正在共享位置，每30秒一次（±{acc}米）', not_sharing: '已下岗：不共享位置', accept: '接单', decline: '拒绝',
  arrive: '到场', resolve: '处置完毕', hand_up: '上报', waiting: '{n} 待发送', refused: '服务器拒绝',
  new_offer: '新任务', respond_in: '请在此时间内响应', due_in: '处置时限', overdue: '已超时', reporter_said: '群众反映',
  eta: '预计到达', distance: '距离', idle: '暂无任务。保持在岗即可接收最近的任务。', idle_off: '上岗后接收任务。',
  queued: '已保存 — 联网后发送', applied: '已发送', dismiss: '知道了', resolve_title: '处置完毕：说明与照片',
  decline_title: '拒绝：原因', hand_up_title: '上报：无法在此解决的原因', no_location: '尚未定位', feed_ws: '实时',
  feed_sse: '实时（SSE）', feed_off: '正在重连…', status_offered: '待接单', status_accepted: '已接单', status_on_site: '已到场',
  status_done: '已完成', pending_tag: '待发送', photo_type: '仅支持 JPEG、PNG、WebP 照片', photo_many: '最多4张照片',
  signed_out: '已退出登录：请重新登录以发送待发送内容',
};
let lang = localStorage.getItem('gridmap-lang') || 'zh';

export function t(key, vars) {
  let s = (lang === 'en' ? EN : ZH)[key] || EN[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
}
export function getLang() { return lang; }
export function setLang(l) {
  lang = l;
  localStorage.setItem('gridmap-lang', l);
  document.documentElement.lang = l === 'en' ? 'en' : 'zh-CN';
  apply();
}
export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}
