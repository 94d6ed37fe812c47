// Example: Tracking user interaction
const trackEvent = async (eventType, eventData) => {
  const event = {
    timestamp: new Date().toISOString(),
    userId: getCurrentUserId(),
    sessionId: getSessionId(),
    eventType: eventType,
    data: eventData,
    context: {
      userAgent: navigator.userAgent,
      url: window.location.href,
      referrer: document.referrer
    }
  };
  
  // Send to analytics service
  await fetch('/api/events', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(event)
  });
};
