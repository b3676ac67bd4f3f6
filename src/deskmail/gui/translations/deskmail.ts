<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1">
<context>
    <name></name>
    <message>
        <location filename="../common.py" line="56"/>
        <source>deskmail</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="94"/>
        <source>name@example.com, Name &lt;name@example.com&gt;</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="103"/>
        <location filename="../composer.py" line="132"/>
        <source>Send</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="105"/>
        <location filename="../composer.py" line="137"/>
        <source>Save Draft</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="106"/>
        <source>Keep it in Drafts to finish later (Ctrl+S)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="107"/>
        <source>Attach…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="108"/>
        <source>Or drop files on this window</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="109"/>
        <source>Remove attachment</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="112"/>
        <source>From:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="113"/>
        <source>To:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="114"/>
        <source>Cc:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="115"/>
        <source>Bcc:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="116"/>
        <source>Subject:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="230"/>
        <source>Write: {subject}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="230"/>
        <location filename="../composer.py" line="346"/>
        <location filename="../models.py" line="237"/>
        <location filename="../outbox.py" line="128"/>
        <source>(no subject)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="233"/>
        <source>Attach files</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="268"/>
        <location filename="../outbox.py" line="37"/>
        <source>Sending…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="282"/>
        <source>Saving the draft…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="292"/>
        <source>Draft saved in {where}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="295"/>
        <source>The draft was not saved</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="326"/>
        <source>Sent, but not saved in Sent</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="327"/>
        <source>The message went out, but its copy could not be saved in Sent.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="344"/>
        <source>Save this message as a draft?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="345"/>
        <source>“{subject}” has changes that are not saved.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../composer.py" line="319"/>
        <location filename="../composer.py" line="335"/>
        <source>Not sent</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="53"/>
        <source>The outgoing server requires a login (almost always)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="55"/>
        <source>Leave messages on the server (POP3)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="58"/>
        <source>Incoming mail</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="60"/>
        <source>Protocol:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="61"/>
        <location filename="../forms.py" line="68"/>
        <source>Server:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="62"/>
        <location filename="../forms.py" line="69"/>
        <source>Port:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="63"/>
        <location filename="../forms.py" line="70"/>
        <source>Security:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="64"/>
        <source>User name:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../forms.py" line="66"/>
        <source>Outgoing mail (SMTP)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../main.py" line="122"/>
        <source>deskmail cannot start</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="302"/>
        <source>Get Mail</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="303"/>
        <source>Delete</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="305"/>
        <source>Mark as Read/Unread</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="306"/>
        <source>Star</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="307"/>
        <source>Next Unread Message</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="308"/>
        <source>Write</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="309"/>
        <source>Reply</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="311"/>
        <source>Reply All</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="312"/>
        <source>Forward</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="313"/>
        <source>Add Mail Account…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="314"/>
        <source>Account Settings…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="315"/>
        <source>Quit</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="316"/>
        <source>Outbox…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="317"/>
        <source>Search</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="318"/>
        <source>Group by Conversation</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="323"/>
        <source>Search all mail (words, from:, subject:, is:unread, date:…)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="324"/>
        <source>Words, &quot;a phrase&quot;, from:, to:, subject:, has:attachment, is:unread, date:2026-01..2026-03, folder:, account:, -word, OR</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="341"/>
        <source>Mail</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="353"/>
        <source>&amp;File</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="358"/>
        <source>&amp;Message</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="364"/>
        <source>&amp;View</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="377"/>
        <location filename="../mainwindow.py" line="416"/>
        <source>All Inboxes</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="399"/>
        <source>Inbox</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="475"/>
        <source>The first {n} found are shown: add words to narrow the search.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="478"/>
        <source>{n} found</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="478"/>
        <source>Nothing found</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="666"/>
        <source>Saved {names}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="707"/>
        <source>Message sent</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="709"/>
        <source>Not sent yet; it stays in the outbox and goes out as soon as the server can be reached.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="714"/>
        <location filename="../outbox.py" line="82"/>
        <source>Outbox</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="751"/>
        <source>Outbox: {n}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="753"/>
        <source>{n} need your decision</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="754"/>
        <location filename="../outbox.py" line="35"/>
        <source>Waiting to be sent</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="808"/>
        <source>Move To</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="828"/>
        <source>Delete messages</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="829"/>
        <source>Delete {n} messages? They go to the Trash (on the server at the next sync).</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="914"/>
        <source>Getting mail…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="950"/>
        <source>Sign in again to {account}…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="959"/>
        <location filename="../wizard.py" line="281"/>
        <source>Waiting for the sign-in in your browser…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="970"/>
        <source>Signed in again</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="983"/>
        <source>{account}: checking {folder}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="987"/>
        <source>{account}: {folder}: {done}{of} messages downloaded</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="995"/>
        <source>{account}: sending “{subject}”</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1008"/>
        <source>1 new message in {account}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1008"/>
        <source>{n} new messages in {account}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1022"/>
        <source>{account}: {what}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1025"/>
        <source>Up to date</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1025"/>
        <source>1 new message</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1026"/>
        <source>{n} new messages</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1039"/>
        <source>Online</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../mainwindow.py" line="1039"/>
        <source>Offline</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../models.py" line="219"/>
        <location filename="../reader.py" line="139"/>
        <source>From</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../models.py" line="219"/>
        <location filename="../outbox.py" line="85"/>
        <location filename="../reader.py" line="140"/>
        <source>Subject</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../models.py" line="219"/>
        <location filename="../reader.py" line="141"/>
        <source>Date</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../models.py" line="220"/>
        <source>Size</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="95"/>
        <source>Load remote content</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="40"/>
        <source>Not sent yet: tried again in {n} min</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="42"/>
        <source>Maybe sent: the server did not confirm</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="44"/>
        <source>Not sent: refused</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="46"/>
        <source>Sent, but some recipients were refused</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="47"/>
        <source>Sent; saving the copy in Sent</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="56"/>
        <source>Was your message delivered?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="59"/>
        <source>The connection ended before the server confirmed “{subject}”.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="60"/>
        <source>It may have been delivered. Sending it again could give the recipients two copies; ask one of them if unsure. It stays in the outbox until you decide.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="63"/>
        <location filename="../outbox.py" line="98"/>
        <source>Send Again</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="64"/>
        <location filename="../outbox.py" line="99"/>
        <source>It Was Delivered</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="65"/>
        <source>Decide Later</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="85"/>
        <location filename="../reader.py" line="141"/>
        <source>To</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="85"/>
        <source>State</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="97"/>
        <source>Send Now</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="100"/>
        <location filename="../settings.py" line="274"/>
        <source>Remove</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="150"/>
        <source>{n} messages in the outbox.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="151"/>
        <source>The outbox is empty.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="167"/>
        <source>Send again?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="168"/>
        <source>“{subject}” may already have been delivered; the recipients could get it twice. Send it again?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="179"/>
        <source>Remove from the outbox?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../outbox.py" line="180"/>
        <source>“{subject}” will not be sent.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="143"/>
        <source>Cc</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="147"/>
        <source>To protect your privacy, deskmail did not load the remote image in this message.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="149"/>
        <source>To protect your privacy, deskmail did not load {n} remote images in this message.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="151"/>
        <source>Always for {sender}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="152"/>
        <source>Always</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="156"/>
        <source>This link shows “{text}” but leads to {href}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="177"/>
        <source>Attachments:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="184"/>
        <source>Open</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="185"/>
        <source>Save As…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="189"/>
        <source>Save All…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../reader.py" line="200"/>
        <source>Save attachments into</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="54"/>
        <source>incoming</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="54"/>
        <source>outgoing</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="57"/>
        <source>port {port}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="61"/>
        <source>user name {name}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="62"/>
        <source>Use {change} for the {where} server</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="91"/>
        <source>Account settings — {name}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="100"/>
        <source>leave empty to use the saved password</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="101"/>
        <location filename="../wizard.py" line="469"/>
        <source>Test account settings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="102"/>
        <location filename="../settings.py" line="180"/>
        <source>Repair</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="107"/>
        <location filename="../wizard.py" line="107"/>
        <source>Your name:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="108"/>
        <location filename="../settings.py" line="239"/>
        <location filename="../wizard.py" line="108"/>
        <source>Email address:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="113"/>
        <location filename="../wizard.py" line="168"/>
        <location filename="../wizard.py" line="474"/>
        <source>Password:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="122"/>
        <source>Test results</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="180"/>
        <source>The doctor recommends:
{changes}

Change the settings so? (Nothing is saved until Save.)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="189"/>
        <source>Settings changed as the doctor recommends; test again, then Save.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="229"/>
        <source>name@example.com</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="232"/>
        <source>empty: replies come to the address itself</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="234"/>
        <source>Plain text, added below “-- ” at the end of each message</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="240"/>
        <source>Name:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="241"/>
        <source>Reply-To:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="242"/>
        <source>Signature:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="121"/>
        <location filename="../settings.py" line="269"/>
        <source>Identities (addresses you send from)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="272"/>
        <source>Add…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="273"/>
        <source>Edit…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="292"/>
        <source> (this account&apos;s own address)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="311"/>
        <source>The account&apos;s own address cannot be removed</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="316"/>
        <source>Add an identity</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="316"/>
        <source>Edit {address}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="334"/>
        <source>Remove identity</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../settings.py" line="335"/>
        <source>Stop sending from {address}?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="60"/>
        <source>Set up your mail account</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="99"/>
        <source>Your mail account</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="100"/>
        <source>deskmail finds your provider&apos;s settings and checks them before saving anything.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="102"/>
        <source>shown to the people you write to</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="132"/>
        <source>Settings found</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="133"/>
        <source>Check what deskmail found, then type your password.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="137"/>
        <source>IMAP: mail stays on the server, folders and flags in step everywhere (recommended)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="139"/>
        <source>POP3: download the inbox to this computer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="140"/>
        <source>Leave a copy of each message on the server</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="207"/>
        <source>Looking up the settings for {domain}…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="239"/>
        <source>Where these settings come from: {source}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="240"/>
        <source>Incoming</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="240"/>
        <source>Outgoing</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="241"/>
        <source>User name</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="272"/>
        <source>Sign in with {provider}…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="273"/>
        <source>{provider} asks for your password on its own page, in your browser; deskmail never sees it.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="293"/>
        <source>Waiting for the sign-in in your browser. If no browser opened, open this page:</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="299"/>
        <source>Signed in. Both servers accepted it; press Next to save the account.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="310"/>
        <source>The settings could not be found.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="311"/>
        <source>Press Next to enter them by hand.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="345"/>
        <source>Checking your account</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="346"/>
        <source>deskmail logs in to the incoming and the outgoing server.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="378"/>
        <source>Send your password there?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="379"/>
        <source>deskmail cannot vouch for {where} ({source}). Send your password to it?</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="387"/>
        <source>Trying {servers} ({source})</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="391"/>
        <source>Incoming server {server} accepted the login</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="392"/>
        <source>Outgoing server {server} accepted the login</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="395"/>
        <source>Skipped {host}: not confirmed</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="406"/>
        <location filename="../wizard.py" line="534"/>
        <source>Both servers work. Press Next to save the account.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="410"/>
        <source>No settings were confirmed, so nothing was checked. Press Next to enter the settings by hand.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="419"/>
        <source>The server answered but refused the login, so the settings are right and the password (or the user name) is not.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="421"/>
        <location filename="../wizard.py" line="538"/>
        <source>Asking the connection doctor why…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="442"/>
        <source>The account was not saved. Press Next to check or change the settings by hand.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="464"/>
        <source>Account settings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="465"/>
        <source>Your provider&apos;s help pages list these. Change what is wrong, then test.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="505"/>
        <source>the settings above</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="522"/>
        <source>Logging in to {server}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="525"/>
        <source>{server} accepted the login</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="577"/>
        <source>Saving your account</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="578"/>
        <source>The password goes into your desktop&apos;s keyring, never into a file.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="593"/>
        <source>The account could not be saved</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="598"/>
        <source>All set</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../wizard.py" line="599"/>
        <source>{email} is ready. deskmail is now fetching your mail; it appears in the main window as it arrives.</source>
        <translation type="unfinished"></translation>
    </message>
</context>
</TS>
